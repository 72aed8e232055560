/* fuzz_state: every state_load of the library on arbitrary bytes.
 * Input: "<object name>\n<state blob>", the name one of objects.c's ("params", "net",
 * "optim:adam", "optim:sgd-lookahead", "sched:onecycle", "monitor", "loader", ...; every
 * optimizer algorithm and scheduler kind has one). A failed load must leave every object
 * unchanged; an accepted blob must save and load again and the object must then work. */
#include <string.h>

#include "objects.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size < 48 ? size : 48);
    if (!nl) return 0;
    size_t len = (size_t)(nl - data);
    for (int i = 0; i < fz_obj_count(); i++) {
        const fz_obj *o = fz_obj_get(i);
        if (strlen(o->name) == len && memcmp(o->name, data, len) == 0) {
            fz_try_load(i, nl + 1, size - len - 1, 1);
            break;
        }
    }
    return 0;
}
