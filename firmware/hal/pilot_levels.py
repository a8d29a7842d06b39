# The two levels of the pilot line from a burst of plain ADC samples (no hardware sync).
#
# The ESP32's ADC cannot be triggered by the PWM, so hal/esp32.PilotADC reads a burst of N
# samples back to back, spanning more than one 1 kHz period. Any phase longer than the read
# interval holds at least one sample: at 10 % duty the high phase lasts 100 us, at 96 % the low
# phase 40 us, against roughly 10-40 us per read_uv() in MicroPython. Then:
#   span = max - min; below steady_span the line is steady (no PWM, or a level with no swing):
#   high = low = mean of all samples. Otherwise high = mean of the samples in the top quarter of
#   the span, low = mean of those in the bottom quarter: averaging instead of taking the raw
#   max/min keeps ADC noise (tens of mV at the pin, ~0.5 V on the pilot) out of the state
#   bands, and the quarter bands drop the few samples caught on an edge.
# Integers only; buf is a preallocated array, nothing is allocated per call.


def levels(buf, n, steady_span, out):
    """Put (high, low) of the first n samples in buf into out[0], out[1] (same unit)."""
    if n < 1:
        raise ValueError("no samples")
    lo = buf[0]
    hi = lo
    total = 0
    for i in range(n):
        v = buf[i]
        total += v
        if v > hi:
            hi = v
        elif v < lo:
            lo = v
    span = hi - lo
    if span < steady_span:
        out[0] = out[1] = total // n
        return
    top = hi - span // 4
    bottom = lo + span // 4
    hsum = 0
    hn = 0
    lsum = 0
    ln = 0
    for i in range(n):
        v = buf[i]
        if v >= top:
            hsum += v
            hn += 1
        elif v <= bottom:
            lsum += v
            ln += 1
    out[0] = hsum // hn
    out[1] = lsum // ln
