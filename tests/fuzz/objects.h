/* Every object of the library that loads a state blob (the params.h convention), created
 * once in a small configuration with non-trivial state, for the checkpoint and state
 * fuzz targets. fz_try_load feeds bytes to one object's state_load and checks the header's
 * promise: on failure the object (and every other object, when check_all) is unchanged
 * and the error has a detail; on success the object works (one step of it) and then
 * what that may have changed (the object, its partner, the arena, the net) is put back to
 * its original state. */
#ifndef GOPT_TESTS_FUZZ_OBJECTS_H
#define GOPT_TESTS_FUZZ_OBJECTS_H

#include "fuzz.h"

typedef size_t (*fz_size_fn)(const void *obj);
typedef gopt_status (*fz_save_fn)(const void *obj, void *buf, size_t size);
typedef gopt_status (*fz_load_fn)(void *obj, const void *buf, size_t size);

typedef struct fz_obj {
    char name[48]; /* "optim:adam", "sched:onecycle", "loader", ... */
    void *obj;
    fz_size_fn size;
    fz_save_fn save;
    fz_load_fn load;
    int kind;                /* what "use" does after a successful load */
    int partner;             /* another object a load or use of this one changes (a
                                scheduler's optimizer), or -1 */
    unsigned char *pristine; /* the state at creation */
    size_t pristine_size;
} fz_obj;

#define FZ_MAX_OBJS 64

/* Created on first use; lives until exit. */
int fz_obj_count(void);
const fz_obj *fz_obj_get(int i);
/* Feed data to object i's state_load; see above. */
void fz_try_load(int i, const void *data, size_t size, int check_all);

#endif /* GOPT_TESTS_FUZZ_OBJECTS_H */
