/* make_seeds DIR: write the seed corpus of the generated targets into DIR/<target>/:
 * state (one "<name>\n<blob>" per object of objects.c), checkpoint (one file holding every
 * object's state as a section named after it, plus u64 and text sections) and cifar10 (one
 * and two records). scripts/fuzz.sh --seeds refreshes tests/fuzz/corpus with it; the other
 * targets' seeds (text, golden, trajectory) are copies of real inputs. */
#include <string.h>
#include <sys/stat.h>

#include "objects.h"
#include "st_nets.h"

static void write_file(const char *dir, const char *target, const char *name, const void *a, size_t na,
                       const void *b, size_t nb) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/seed-%s", dir, target, name);
    for (char *p = path + strlen(dir) + strlen(target) + 7; *p; p++)
        if (*p == ':' || *p == '/') *p = '_';
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f, "cannot write %s", path);
    FZ_CHECK(fwrite(a, 1, na, f) == na && (!nb || fwrite(b, 1, nb, f) == nb) && fclose(f) == 0, "writing %s", path);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    mkdir(dir, 0755);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/ckpt.tmp", dir);
    gopt_ckpt_writer *w;
    FZ_CHECK(gopt_ckpt_writer_begin(tmp, &w) == GOPT_OK, "writer");
    for (int i = 0; i < fz_obj_count(); i++) {
        const fz_obj *o = fz_obj_get(i);
        char head[64];
        snprintf(head, sizeof head, "%s\n", o->name);
        write_file(dir, "state", o->name, head, strlen(head), o->pristine, o->pristine_size);
        FZ_CHECK(gopt_ckpt_writer_add(w, o->name, o->pristine, o->pristine_size) == GOPT_OK, "add");
    }
    FZ_CHECK(gopt_ckpt_writer_add_u64(w, "step", 42) == GOPT_OK, "add_u64");
    FZ_CHECK(gopt_ckpt_writer_add_text(w, "config", "optim=adam lr=0.001") == GOPT_OK, "add_text");
    FZ_CHECK(gopt_ckpt_writer_commit(w) == GOPT_OK, "commit");
    FILE *f = fopen(tmp, "rb");
    FZ_CHECK(f, "reopen");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    FZ_CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "read back");
    fclose(f);
    remove(tmp);
    write_file(dir, "checkpoint", "all-objects", buf, (size_t)n, NULL, 0);
    free(buf);
    /* a small one: two sections */
    FZ_CHECK(gopt_ckpt_writer_begin(tmp, &w) == GOPT_OK, "writer");
    const fz_obj *acc = NULL;
    for (int i = 0; i < fz_obj_count(); i++)
        if (!strcmp(fz_obj_get(i)->name, "accum")) acc = fz_obj_get(i);
    FZ_CHECK(acc, "no accum object");
    FZ_CHECK(gopt_ckpt_writer_add(w, "accum", acc->pristine, acc->pristine_size) == GOPT_OK, "add");
    FZ_CHECK(gopt_ckpt_writer_add_u64(w, "epoch", 3) == GOPT_OK, "add_u64");
    FZ_CHECK(gopt_ckpt_writer_commit(w) == GOPT_OK, "commit");
    f = fopen(tmp, "rb");
    FZ_CHECK(f, "reopen");
    unsigned char small[4096];
    size_t ns = fread(small, 1, sizeof small, f);
    fclose(f);
    remove(tmp);
    write_file(dir, "checkpoint", "small", small, ns, NULL, 0);

    static unsigned char recs[2 * GOPT_CIFAR10_RECORD_BYTES];
    for (size_t i = 0; i < sizeof recs; i++) recs[i] = (unsigned char)(i * 37 + 11);
    recs[0] = 3;
    recs[GOPT_CIFAR10_RECORD_BYTES] = 9;
    write_file(dir, "cifar10", "one-record", recs, GOPT_CIFAR10_RECORD_BYTES, NULL, 0);
    write_file(dir, "cifar10", "two-records", recs, sizeof recs, NULL, 0);
    /* safetensors: each net's export (PyTorch and arena names) behind the mode byte of
     * fuzz_safetensors, and one file of F16/BF16/F64 tensors for the small net */
    for (int k = 0; k < 2; k++) {
        gopt_net *net = st_net(k);
        FZ_CHECK(net, "st_net %d", k);
        for (int names = 0; names < 2; names++) {
            gopt_weights_config wc = gopt_weights_config_default();
            wc.names = names ? GOPT_NAMES_ARENA : GOPT_NAMES_TORCH;
            FZ_CHECK(gopt_net_save_safetensors(net, tmp, &wc) == GOPT_OK, "save safetensors");
            f = fopen(tmp, "rb");
            FZ_CHECK(f, "reopen");
            static unsigned char st[1 << 16];
            size_t nst = fread(st, 1, sizeof st, f);
            fclose(f);
            remove(tmp);
            unsigned char mode = (unsigned char)(k | (names ? 4 : 0) | (names ? 10 : 0));
            char name[32];
            snprintf(name, sizeof name, "%s-%s", k ? "block" : "tiny", names ? "arena-path" : "torch");
            write_file(dir, "safetensors", name, &mode, 1, st, nst);
        }
        gopt_net_destroy(net);
    }
    {
        static const char h[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                                "\"fc.weight\":{\"dtype\":\"F16\",\"shape\":[3,4],\"data_offsets\":[0,24]},"
                                "\"fc.bias\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
                                "\"bn.weight\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[30,54]},"
                                "\"bn.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[54,66]},"
                                "\"bn.running_mean\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[66,78]},"
                                "\"bn.running_var\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[78,90]},"
                                "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[90,98]}}";
        unsigned char file[1 + 8 + sizeof h + 8 + 98];
        size_t hl = sizeof h - 1, pad = (8 - hl % 8) % 8, o = 0;
        file[o++] = 0; /* tiny net, strict, PyTorch names, from memory */
        for (int i = 0; i < 8; i++) file[o++] = (unsigned char)((hl + pad) >> (8 * i));
        memcpy(file + o, h, hl);
        o += hl;
        memset(file + o, ' ', pad);
        o += pad;
        for (int i = 0; i < 98; i++) file[o++] = (unsigned char)(0x3c + i % 5);
        write_file(dir, "safetensors", "tiny-mixed-dtypes", file, o, NULL, 0);
    }
    printf("seeds for %d objects written to %s\n", fz_obj_count(), dir);
    return 0;
}
