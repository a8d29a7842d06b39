// gcsplit: a poll in the middle of every garbage collection, between its mark and its sweep.
//
// A collection cannot be split from Python, and on the charger its pause is the longest
// piece of work between two safety polls (docs/firmware.md, "Safety loop"). But the collector
// runs finalisers at one point of it: after every live object is marked, before any garbage is
// freed (py/gc.c, gc_collect_end). An unreachable object whose type has a __del__ is
// finalised there. So arm(callback) leaves such an object, unreferenced, in the heap: the
// next collection, whoever starts it (the safety watch or a full heap), calls callback()
// between its mark and its sweep, and the pause becomes two gaps.
//
// The callback is held in a root pointer (the latest one armed), not by the sentinel, so it
// and everything it reaches are always marked: it never runs on objects about to be freed,
// and storing what it reaches anywhere is safe. The sentinel is only the trigger.
// What callback() may not do there: allocate (the heap is locked: MemoryError). An exception
// it raises is swallowed and counted (failures()): a finaliser must not raise into the
// collector.
//
// One MicroPython thread is assumed (the firmware starts none): with the GIL (the ESP32 port)
// the callback's bytecode may hand it to another thread, which could then start a collection
// of its own in the middle of this one. Native finalisers (a socket's close) have the same
// limit. The scheduler is locked around finalisers, so no soft IRQ callback runs in there.
//
// The collector is conservative: a stale copy of the sentinel's address left on the C stack
// can keep it alive through one collection, which then runs whole (one gap, as without this
// module); it fires at a later one. fired() counts the callbacks made.
//
//   gcsplit.arm(callback)    leave a sentinel for the next collection; returns None
//   gcsplit.fired()          callbacks made so far (small int)
//   gcsplit.failures()       of those, how many raised (swallowed)
#include "py/gc.h"
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

static mp_uint_t gcsplit_fired_count;
static mp_uint_t gcsplit_failure_count;

static mp_obj_t gcsplit_sentinel_del(mp_obj_t self_in) {
    (void)self_in;
    mp_obj_t callback = MP_STATE_VM(gcsplit_callback);
    if (callback != MP_OBJ_NULL) {
        gcsplit_fired_count++;
        nlr_buf_t nlr;
        if (nlr_push(&nlr) == 0) {
            mp_call_function_0(callback);
            nlr_pop();
        } else {
            gcsplit_failure_count++;
        }
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
    { MP_ROM_QSTR(MP_QSTR_fired), MP_ROM_PTR(&gcsplit_fired_obj) },
    { MP_ROM_QSTR(MP_QSTR_failures), MP_ROM_PTR(&gcsplit_failures_obj) },
};
static MP_DEFINE_CONST_DICT(gcsplit_globals, gcsplit_globals_table);

const mp_obj_module_t gcsplit_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&gcsplit_globals,
};

MP_REGISTER_MODULE(MP_QSTR_gcsplit, gcsplit_module);
