// cputime: the calling thread's own CPU time, for the safety bench only
// (host_tools/bench/safety.py; the firmware never imports it: no ESP32 has it).
//
// thread_us() -> small int: CLOCK_THREAD_CPUTIME_ID (user + system time of this thread) in
// microseconds, wrapped like time.ticks_us() (same period), so time.ticks_diff() subtracts two
// readings. It never allocates: the bench reads it at every safety poll inside the app's heap.
// Time the thread spends asleep, blocked or waiting for a CPU does not move it.
//
// switches(buf) -> None: the thread's context switches so far (getrusage(RUSAGE_THREAD)):
// buf[0] the voluntary ones (it blocked: a sleep or any other wait), buf[1] the involuntary
// ones (the kernel took the CPU from it), written into a writable buffer of at least two
// 32-bit words (array('i', [0, 0])): nothing allocated. One system call and no text, where
// /proc/self/status costs the kernel a page of formatted text per read (and the bench reads
// the counters twice per poll).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             // RUSAGE_THREAD
#endif
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

#include "py/runtime.h"
#include "py/smallint.h"

static mp_obj_t cputime_thread_us(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        mp_raise_OSError(errno);
    }
    // Unsigned arithmetic wraps modulo 2**32, a multiple of the period: the masked value
    // stays exact however long the thread has run.
    mp_uint_t us = (mp_uint_t)ts.tv_sec * 1000000u + (mp_uint_t)(ts.tv_nsec / 1000);
    return MP_OBJ_NEW_SMALL_INT(us & (MICROPY_PY_TIME_TICKS_PERIOD - 1));
}
static MP_DEFINE_CONST_FUN_OBJ_0(cputime_thread_us_obj, cputime_thread_us);

static mp_obj_t cputime_switches(mp_obj_t buf_in) {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(buf_in, &buf, MP_BUFFER_WRITE);
    if (buf.len < 2 * sizeof(int32_t)) {
        mp_raise_ValueError(MP_ERROR_TEXT("buffer too small"));
    }
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) {
        mp_raise_OSError(errno);
    }
    int32_t *out = (int32_t *)buf.buf;
    out[0] = (int32_t)ru.ru_nvcsw;
    out[1] = (int32_t)ru.ru_nivcsw;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(cputime_switches_obj, cputime_switches);

static const mp_rom_map_elem_t cputime_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_cputime) },
    { MP_ROM_QSTR(MP_QSTR_thread_us), MP_ROM_PTR(&cputime_thread_us_obj) },
    { MP_ROM_QSTR(MP_QSTR_switches), MP_ROM_PTR(&cputime_switches_obj) },
};
static MP_DEFINE_CONST_DICT(cputime_globals, cputime_globals_table);

const mp_obj_module_t cputime_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&cputime_globals,
};

MP_REGISTER_MODULE(MP_QSTR_cputime, cputime_module);
