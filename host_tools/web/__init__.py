"""What people see: the operator's dashboard and the driver's in-browser receipt check (Flask,
served by `chargeproof serve` beside the proof API), and the self-contained demo report."""
