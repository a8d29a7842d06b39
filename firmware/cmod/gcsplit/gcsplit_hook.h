// The collector's loop hook (py/mpconfig.h, MICROPY_GC_HOOK_LOOP), for gcsplit.c's slices.
//
// py/gc.c runs MICROPY_GC_HOOK_LOOP(i) once per step of its long loops: each word it marks,
// each root, each block it sweeps, each byte of the allocation table an allocation searches.
// A port leaves it empty; this header, given to every C file of the image (gcc -include:
// host_tools/devtools/mp32.py for the unix port, micropython.cmake for the board's image),
// makes it a countdown that calls gcsplit_tick() every GCSPLIT_TICK_EVERY steps: one
// decrement and one branch per step, and a clock read every few microseconds of marking.
#ifndef GCSPLIT_HOOK_H
#define GCSPLIT_HOOK_H

#define GCSPLIT_TICK_EVERY (256)

extern unsigned int gcsplit_countdown;
void gcsplit_tick(void);

#ifndef MICROPY_GC_HOOK_LOOP
#define MICROPY_GC_HOOK_LOOP(i) do { \
        if (--gcsplit_countdown == 0) { \
            gcsplit_tick(); \
        } \
} while (0)
#endif

#endif // GCSPLIT_HOOK_H
