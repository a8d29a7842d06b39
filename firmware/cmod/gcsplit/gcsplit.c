// gcsplit: polls in the middle of every garbage collection.
//
// A collection cannot be split from Python, and on the charger its pause is the longest
// piece of work between two safety polls (docs/firmware.md, "Safety loop"). This module has
// the collector call a callback of ours from inside it, two ways:
//
// - Between its mark and its sweep. The collector runs finalisers at one point: after every
//   live object is marked, before any garbage is freed (py/gc.c, gc_collect_end). An
//   unreachable object whose type has a __del__ is finalised there. So arm(callback) leaves
//   such an object, unreferenced, in the heap: the next collection, whoever starts it (the
//   safety watch or a full heap), calls callback() there. Needs only the finaliser.
// - Every slice_us of its work: slices(callback, slice_us). py/gc.c steps its long loops
//   through MICROPY_GC_HOOK_LOOP, which gcsplit_hook.h (given to every C file of the image)
//   makes count down to gcsplit_tick(); inside a collection the tick reads the clock and
//   calls callback() once slice_us have passed since the collection began or since the last
//   call. Marking is most of a pause, and this cuts it up. In an image whose py/gc.c was
//   built without gcsplit_hook.h, slices() raises OSError(ENODEV); hooked() says which.
//
// Each callback is held in a root pointer, so it and everything it reaches are always live:
// it never runs on objects about to be freed. What a callback may not do in there: allocate
// (the heap is locked: MemoryError), or move a reference (take it out of one object and store
// it in another: a slice may come before both were marked, and the object would be lost); it
// may read anything and store small ints, constants and references it leaves where they are.
// The safety poll does only that. An exception it raises is swallowed and counted
// (failures()): the collector must go on. The scheduler is locked around each call (as around
// finalisers), so no soft IRQ callback runs in there, and a tick does nothing while a call is
// under way (gc.mem_free() in a callback walks a hooked loop too).
//
// One MicroPython thread is assumed (the firmware starts none): with the GIL (the ESP32 port)
// a callback's bytecode may hand it to another thread, which could then start a collection
// of its own in the middle of this one. Native finalisers (a socket's close) have the same
// limit.
//
// The collector is conservative: a stale copy of the sentinel's address left on the C stack
// can keep it alive through one collection, which then runs unsplit at its sweep; it fires at
// a later one. fired() counts the calls made between mark and sweep.
//
//   gcsplit.arm(callback)           leave a sentinel for the next collection; returns None
//   gcsplit.slices(callback, us)    call callback every `us` of a collection's work (0: never)
//   gcsplit.hooked()                True when this image calls gcsplit_tick (slices work)
//   gcsplit.fired()                 calls made between mark and sweep so far (small int)
//   gcsplit.sliced()                calls made by slices so far
//   gcsplit.failures()              of all those, how many raised (swallowed)
#include <errno.h>

#include "gcsplit_hook.h"
#include "py/gc.h"
#include "py/mphal.h"
#include "py/nlr.h"
#include "py/runtime.h"
#include "py/smallint.h"

#if !MICROPY_ENABLE_FINALISER
#error "gcsplit needs MICROPY_ENABLE_FINALISER"
#endif

typedef struct _gcsplit_sentinel_t {
    mp_obj_base_t base;
} gcsplit_sentinel_t;

MP_REGISTER_ROOT_POINTER(mp_obj_t gcsplit_callback);
MP_REGISTER_ROOT_POINTER(mp_obj_t gcsplit_slice_callback);

static mp_uint_t gcsplit_fired_count;
static mp_uint_t gcsplit_sliced_count;
static mp_uint_t gcsplit_failure_count;

// The slices' state. The tick cannot see a collection begin: it takes the first tick with the
// collector's flag set as the start (a few microseconds in), and a tick without it (an
// allocation's search, between collections) as the end. Two collections with no allocation
// between them look like one: the second's first slice is then cut short, never longer.
unsigned int gcsplit_countdown = 1;
static mp_uint_t gcsplit_slice_us;      // 0: no slices
static mp_uint_t gcsplit_since_us;      // the current slice's start (mp_hal_ticks_us)
static bool gcsplit_in_collection;      // a tick has seen the collection under way
static bool gcsplit_calling;            // a callback is running
static bool gcsplit_ticked;             // gcsplit_tick has run: py/gc.c is hooked

// Call a callback from inside the collector: protected (nothing raised escapes into it) and
// with the scheduler locked, as py/gc.c calls a finaliser.
static void gcsplit_call(mp_obj_t callback) {
    gcsplit_calling = true;
    #if MICROPY_ENABLE_SCHEDULER
    mp_sched_lock();
    #endif
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_call_function_0(callback);
        nlr_pop();
    } else {
        gcsplit_failure_count++;
    }
    #if MICROPY_ENABLE_SCHEDULER
    mp_sched_unlock();
    #endif
    gcsplit_calling = false;
}

void gcsplit_tick(void) {
    gcsplit_countdown = GCSPLIT_TICK_EVERY;
    gcsplit_ticked = true;
    if (!(MP_STATE_THREAD(gc_lock_depth) & GC_COLLECT_FLAG)) {
        gcsplit_in_collection = false;
        return;
    }
    mp_obj_t callback = MP_STATE_VM(gcsplit_slice_callback);
    if (gcsplit_slice_us == 0 || callback == MP_OBJ_NULL || gcsplit_calling) {
        return;
    }
    mp_uint_t now = mp_hal_ticks_us();
    if (!gcsplit_in_collection) {
        gcsplit_in_collection = true;
        gcsplit_since_us = now;
        return;
    }
    if ((mp_uint_t)(now - gcsplit_since_us) < gcsplit_slice_us) {
        return;
    }
    gcsplit_sliced_count++;
    gcsplit_call(callback);
    gcsplit_since_us = mp_hal_ticks_us();
}

static mp_obj_t gcsplit_sentinel_del(mp_obj_t self_in) {
    (void)self_in;
    mp_obj_t callback = MP_STATE_VM(gcsplit_callback);
    if (callback != MP_OBJ_NULL && !gcsplit_calling) {
        gcsplit_fired_count++;
        gcsplit_call(callback);
        gcsplit_since_us = mp_hal_ticks_us();   // the sweep's slice starts here
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(gcsplit_sentinel_del_obj, gcsplit_sentinel_del);

static const mp_rom_map_elem_t gcsplit_sentinel_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___del__), MP_ROM_PTR(&gcsplit_sentinel_del_obj) },
};
static MP_DEFINE_CONST_DICT(gcsplit_sentinel_locals, gcsplit_sentinel_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    gcsplit_sentinel_type,
    MP_QSTR_sentinel,
    MP_TYPE_FLAG_NONE,
    locals_dict, &gcsplit_sentinel_locals
    );

// Not inlined: its frame, the only place that holds the sentinel's address, is gone when
// arm() returns.
static MP_NOINLINE void gcsplit_leave(void) {
    mp_obj_malloc_with_finaliser(gcsplit_sentinel_t, &gcsplit_sentinel_type);
}

// Overwrite the stack below this frame, where gcsplit_leave and the allocator kept the address.
static MP_NOINLINE void gcsplit_scrub(void) {
    volatile mp_uint_t pad[64];
    for (size_t i = 0; i < MP_ARRAY_SIZE(pad); i++) {
        pad[i] = 0;
    }
}

static mp_obj_t gcsplit_arm(mp_obj_t callback) {
    if (!mp_obj_is_callable(callback)) {
        mp_raise_TypeError(MP_ERROR_TEXT("callback must be callable"));
    }
    MP_STATE_VM(gcsplit_callback) = callback;
    gcsplit_leave();
    gcsplit_scrub();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(gcsplit_arm_obj, gcsplit_arm);

// True when py/gc.c was compiled with gcsplit_hook.h: its loops have called gcsplit_tick (the
// first step of the first allocation's search did: the countdown starts at 1).
static bool gcsplit_is_hooked(void) {
    return gcsplit_ticked;
}

static mp_obj_t gcsplit_hooked(void) {
    return mp_obj_new_bool(gcsplit_is_hooked());
}
static MP_DEFINE_CONST_FUN_OBJ_0(gcsplit_hooked_obj, gcsplit_hooked);

static mp_obj_t gcsplit_slices(mp_obj_t callback, mp_obj_t slice_us_in) {
    mp_int_t slice_us = mp_obj_get_int(slice_us_in);
    if (slice_us < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("slice_us must be >= 0"));
    }
    if (slice_us > 0 && !mp_obj_is_callable(callback)) {
        mp_raise_TypeError(MP_ERROR_TEXT("callback must be callable"));
    }
    if (slice_us > 0 && !gcsplit_is_hooked()) {
        mp_raise_OSError(ENODEV);
    }
    gcsplit_slice_us = 0;                   // no tick calls the old one while this changes
    MP_STATE_VM(gcsplit_slice_callback) = slice_us > 0 ? callback : MP_OBJ_NULL;
    gcsplit_slice_us = slice_us;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(gcsplit_slices_obj, gcsplit_slices);

static mp_obj_t gcsplit_sliced(void) {
    return MP_OBJ_NEW_SMALL_INT(gcsplit_sliced_count & MP_SMALL_INT_POSITIVE_MASK);
}
static MP_DEFINE_CONST_FUN_OBJ_0(gcsplit_sliced_obj, gcsplit_sliced);

static mp_obj_t gcsplit_fired(void) {
    return MP_OBJ_NEW_SMALL_INT(gcsplit_fired_count & MP_SMALL_INT_POSITIVE_MASK);
}
static MP_DEFINE_CONST_FUN_OBJ_0(gcsplit_fired_obj, gcsplit_fired);

static mp_obj_t gcsplit_failures(void) {
    return MP_OBJ_NEW_SMALL_INT(gcsplit_failure_count & MP_SMALL_INT_POSITIVE_MASK);
}
static MP_DEFINE_CONST_FUN_OBJ_0(gcsplit_failures_obj, gcsplit_failures);

static const mp_rom_map_elem_t gcsplit_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_gcsplit) },
    { MP_ROM_QSTR(MP_QSTR_arm), MP_ROM_PTR(&gcsplit_arm_obj) },
    { MP_ROM_QSTR(MP_QSTR_slices), MP_ROM_PTR(&gcsplit_slices_obj) },
    { MP_ROM_QSTR(MP_QSTR_hooked), MP_ROM_PTR(&gcsplit_hooked_obj) },
    { MP_ROM_QSTR(MP_QSTR_fired), MP_ROM_PTR(&gcsplit_fired_obj) },
    { MP_ROM_QSTR(MP_QSTR_sliced), MP_ROM_PTR(&gcsplit_sliced_obj) },
    { MP_ROM_QSTR(MP_QSTR_failures), MP_ROM_PTR(&gcsplit_failures_obj) },
};
static MP_DEFINE_CONST_DICT(gcsplit_globals, gcsplit_globals_table);

const mp_obj_module_t gcsplit_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&gcsplit_globals,
};

MP_REGISTER_MODULE(MP_QSTR_gcsplit, gcsplit_module);
