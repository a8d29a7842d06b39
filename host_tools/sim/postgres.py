"""A throw-away PostgreSQL server for tests, the bench and the fleet load (Debian's postgresql).

    server = PostgresServer().start()       # initdb + pg_ctl start in a fresh temporary directory
    dsn = server.create_database("t1")      # "host=<socket dir> dbname=t1 user=postgres"
    server.stop()                           # pg_ctl stop, directory removed

It listens on a Unix socket in its own directory only (no TCP port to collide with anyone else's).
initdb refuses to run as root, so as root (CI) the server runs as the `postgres` user that
Debian's package creates, in a directory handed to that user. `fsync=off`: a test server loses
nothing that a test needs after a power cut; production keeps PostgreSQL's defaults.
"""
import glob
import os
import shutil
import subprocess
import tempfile

DEFAULT_BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


def find_bindir():
    """Where initdb and pg_ctl are (the newest Debian PostgreSQL), or None."""
    env = os.environ.get("CP_PG_BINDIR")
    for d in ([env] if env else []) + DEFAULT_BINDIRS:
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


class PostgresServer:
    def __init__(self, bindir=None, settings=None):
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (host_tools/devtools/bootstrap.sh "
                               "installs Debian's postgresql)")
        self.settings = {"fsync": "off", "max_connections": "200", "shared_buffers": "64MB"}
        self.settings.update(settings or {})
        self.dir = None
        self.running = False

    @property
    def socket_dir(self):
        return os.path.join(self.dir, "sock")

    def _run(self, *args):
        cmd = [os.path.join(self.bindir, args[0])] + list(args[1:])
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s %s" % (args[0], proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="chargeproof-pg-")
        os.makedirs(self.socket_dir)
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            for d in (self.dir, self.socket_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", self.dir + "/data", "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        opts = "-k %s -h ''" % self.socket_dir + "".join(
            " -c %s=%s" % kv for kv in sorted(self.settings.items()))
        self._run("pg_ctl", "-D", self.dir + "/data", "-l", self.dir + "/pg.log", "-w", "-o", opts, "start")
        self.running = True
        return self

    def dsn(self, dbname="postgres"):
        return "host=%s dbname=%s user=postgres" % (self.socket_dir, dbname)

    def create_database(self, name):
        """A new empty database; returns its conninfo."""
        import psycopg
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute('CREATE DATABASE "%s"' % name.replace('"', ''))
        return self.dsn(name)

    def stop(self):
        if self.running:
            try:
                self._run("pg_ctl", "-D", self.dir + "/data", "-m", "immediate", "-w", "stop")
            finally:
                self.running = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
