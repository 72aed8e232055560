#define _POSIX_C_SOURCE 200809L
/* Weights interop (gradopt/interop.h) and the net's buffers by name (net.h).
 *
 * Without arguments (ctest label unit): round trips bit-exact, PyTorch names of
 * gopt_resnet_cifar, buffers by name, every refusal of a malformed safetensors file (and that
 * the net is unchanged after each), F16/BF16/F64 import, the .npz layout, allocation failure
 * at every site.
 * With `--torch PYTHON SCRIPT DIR` (test_interop_torch, not unit): a ResNet-8 trained a few
 * SGD steps here, exported and loaded by SCRIPT into bench/torch_train.py's model in PyTorch,
 * must give the same eval-mode logits; weights written by PyTorch, imported here, too; the
 * .npz is checked with numpy.load. Exit 77 (skip) when SCRIPT says torch is missing. */
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc_fail.h"

#include <gradopt/interop.h>

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/gopt_interop_%d", (int)getpid());
        mkdir(tmpdir, 0700);
    }
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static gopt_net *resnet8(uint64_t seed, int max_batch) {
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = 8;
    rc.seed = seed;
    rc.max_batch = max_batch;
    gopt_net *net = NULL;
    assert_ok(gopt_resnet_cifar(&rc, &net));
    return net;
}

/* Running statistics made non-trivial (a fresh net has 0 and 1). */
static void perturb_buffers(gopt_net *net, float scale) {
    for (int i = 0; i < gopt_net_buffer_count(net); i++) {
        gopt_net_buffer b;
        assert_ok(gopt_net_buffer_info(net, i, &b));
        for (int64_t k = 0; k < b.value.numel; k++)
            b.value.data[k] = (i % 2) ? 0.5f + scale * (float)((k * 7 + i) % 11) : scale * (float)((k * 5 + i) % 13 - 6);
    }
}

/* Every float of the arena and the buffers, copied. */
static float *snapshot(gopt_net *net, int64_t *n) {
    gopt_params *p = gopt_net_params(net);
    int64_t total = gopt_params_numel(p);
    for (int i = 0; i < gopt_net_buffer_count(net); i++) {
        gopt_net_buffer b;
        assert_ok(gopt_net_buffer_info(net, i, &b));
        total += b.value.numel;
    }
    float *s = malloc((size_t)total * sizeof(float));
    memcpy(s, gopt_params_values(p), (size_t)gopt_params_numel(p) * sizeof(float));
    int64_t o = gopt_params_numel(p);
    for (int i = 0; i < gopt_net_buffer_count(net); i++) {
        gopt_net_buffer b;
        assert_ok(gopt_net_buffer_info(net, i, &b));
        memcpy(s + o, b.value.data, (size_t)b.value.numel * sizeof(float));
        o += b.value.numel;
    }
    *n = total;
    return s;
}

static void assert_same_state(gopt_net *a, gopt_net *b) {
    int64_t na, nb;
    float *sa = snapshot(a, &na), *sb = snapshot(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(sa, sb, (size_t)na * sizeof(float));
    free(sa);
    free(sb);
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *size = (size_t)n;
    return b;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* ---- round trips -------------------------------------------------------------------------- */

static void test_roundtrip_resnet(void **state) {
    (void)state;
    gopt_net *a = resnet8(1, 2), *b = resnet8(2, 2);
    perturb_buffers(a, 0.25f);
    const gopt_weights_names modes[2] = {GOPT_NAMES_TORCH, GOPT_NAMES_ARENA};
    for (int m = 0; m < 2; m++) {
        gopt_weights_config c = gopt_weights_config_default();
        c.names = modes[m];
        c.num_batches_tracked = 17;
        const char *path = tmp_path("rt.safetensors");
        assert_ok(gopt_net_save_safetensors(a, path, &c));
        gopt_net *fresh = resnet8(3 + (uint64_t)m, 2);
        gopt_weights_report r;
        assert_ok(gopt_net_load_safetensors(fresh, path, &c, &r));
        assert_same_state(a, fresh);
        int64_t nparams = gopt_params_count(gopt_net_params(a));
        assert_int_equal(r.loaded, nparams + gopt_net_buffer_count(a));
        assert_int_equal(r.missing, 0);
        assert_int_equal(r.unexpected, 0);
        assert_string_equal(r.text, "");
        gopt_net_destroy(fresh);
        /* the other naming is refused strictly (the names differ), and changes nothing */
        gopt_weights_config other = c;
        other.names = modes[1 - m];
        int64_t n0;
        float *before = snapshot(b, &n0);
        assert_status(gopt_net_load_safetensors(b, path, &other, NULL), GOPT_EFORMAT, "missing");
        int64_t n1;
        float *after = snapshot(b, &n1);
        assert_memory_equal(before, after, (size_t)n0 * sizeof(float));
        free(before);
        free(after);
        unlink(path);
    }
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

static void test_roundtrip_params(void **state) {
    (void)state;
    gopt_params *p = small_params(), *q = NULL;
    assert_ok(gopt_params_create(&q));
    int64_t w[2] = {8, 4}, bs[1] = {8};
    assert_ok(gopt_params_add(q, "fc.weight", 2, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(q, "fc.bias", 1, bs, GOPT_TAG_BIAS, NULL));
    assert_status(gopt_params_load_safetensors(q, "/nonexistent", NULL, NULL), GOPT_ESTATE, "finalized");
    assert_ok(gopt_params_finalize(q));
    const char *path = tmp_path("params.safetensors");
    assert_ok(gopt_params_save_safetensors(p, path));
    assert_ok(gopt_params_load_safetensors(q, path, NULL, NULL));
    assert_memory_equal(gopt_params_values(p), gopt_params_values(q), 40 * sizeof(float));
    /* the file is exactly what the format says: header length, JSON, dense little-endian data */
    size_t size;
    unsigned char *b = read_file(path, &size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    assert_int_equal(hl % 8, 0);
    assert_int_equal(size, 8 + hl + 40 * 4);
    assert_non_null(strstr((char *)b + 8, "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[8,4],\"data_offsets\":[0,128]}"));
    assert_non_null(strstr((char *)b + 8, "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[128,160]}"));
    assert_memory_equal(b + 8 + hl, gopt_params_values(p), 160); /* this host is little-endian */
    free(b);
    assert_status(gopt_params_load_safetensors(q, tmp_path("none.safetensors"), NULL, NULL), GOPT_EIO,
                  "none.safetensors");
    unlink(path);
    gopt_params_destroy(p);
    gopt_params_destroy(q);
}

/* ---- names ---------------------------------------------------------------------------------- */

static void test_torch_names(void **state) {
    (void)state;
    gopt_net *net = resnet8(1, 2);
    const char *path = tmp_path("names.safetensors");
    assert_ok(gopt_net_save_safetensors(net, path, NULL));
    size_t size;
    unsigned char *b = read_file(path, &size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    b[8 + hl] = 0;
    const char *h = (const char *)b + 8;
    /* bench/torch_train.py's ResNet(8).state_dict() keys, every one */
    static const char *const want[] = {
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
        "layers.0.conv1.weight", "layers.0.bn1.weight", "layers.0.bn1.running_var", "layers.0.conv2.weight",
        "layers.0.bn2.num_batches_tracked", "layers.1.conv1.weight", "layers.1.shortcut.0.weight",
        "layers.1.shortcut.1.weight", "layers.1.shortcut.1.bias", "layers.1.shortcut.1.running_mean",
        "layers.1.shortcut.1.running_var", "layers.1.shortcut.1.num_batches_tracked", "layers.2.shortcut.0.weight",
        "layers.2.bn2.bias", "fc.weight", "fc.bias"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char key[96];
        snprintf(key, sizeof key, "\"%s\":{", want[i]);
        if (!strstr(h, key)) fail_msg("'%s' not in the header: %s", want[i], h);
    }
    assert_null(strstr(h, "layer1."));
    assert_null(strstr(h, "shortcut.conv"));
    assert_non_null(strstr(h, "\"layers.1.shortcut.0.weight\":{\"dtype\":\"F32\",\"shape\":[32,16,1,1]"));
    assert_non_null(strstr(h, "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[10,64]"));
    assert_non_null(strstr(h, "\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[]"));
    /* 3 blocks: 1 + 2 + 2 + 3 convs+bn pairs... count the keys: ResNet-8 has 9 BN, 9 conv, fc */
    int keys = 0;
    for (const char *q = h; (q = strstr(q, "\"dtype\"")) != NULL; q++) keys++;
    assert_int_equal(keys, 9 + 9 * 5 + 2); /* conv weights, BN (5 each), fc weight+bias */
    free(b);
    char buf[80];
    assert_ok(gopt_net_torch_name(net, "layer2.0.shortcut.bn.running_var", buf, sizeof buf));
    assert_string_equal(buf, "layers.1.shortcut.1.running_var");
    assert_ok(gopt_net_torch_name(net, "layer3.0.conv2.weight", buf, sizeof buf));
    assert_string_equal(buf, "layers.2.conv2.weight");
    assert_ok(gopt_net_torch_name(net, "fc.bias", buf, sizeof buf));
    assert_string_equal(buf, "fc.bias");
    assert_status(gopt_net_torch_name(net, "layer3.0.conv2.weight", buf, 10), GOPT_ERANGE, "layer3.0.conv2.weight");
    /* no num_batches_tracked with a negative count; the file still loads */
    gopt_weights_config c = gopt_weights_config_default();
    c.num_batches_tracked = -1;
    assert_ok(gopt_net_save_safetensors(net, path, &c));
    b = read_file(path, &size);
    assert_null(strstr((char *)b + 8, "num_batches_tracked"));
    free(b);
    assert_ok(gopt_net_load_safetensors(net, path, NULL, NULL));
    unlink(path);
    gopt_net_destroy(net);
}

static void test_buffers_by_name(void **state) {
    (void)state;
    gopt_net *net = resnet8(1, 2);
    assert_int_equal(gopt_net_buffer_count(net), 18);
    assert_int_equal(gopt_net_buffer_count(NULL), 0);
    gopt_tensor v;
    assert_ok(gopt_net_find_buffer(net, "bn1.running_mean", &v));
    assert_int_equal(v.ndim, 1);
    assert_int_equal(v.shape[0], 16);
    assert_true(v.data[0] == 0.0f);
    gopt_tensor var;
    assert_ok(gopt_net_find_buffer(net, "layer2.0.shortcut.bn.running_var", &var));
    assert_int_equal(var.shape[0], 32);
    assert_true(var.data[3] == 1.0f);
    gopt_tensor var2;
    assert_ok(gopt_net_find_buffer(net, "layers.1.shortcut.1.running_var", &var2));
    assert_ptr_equal(var.data, var2.data);
    gopt_net_buffer bi;
    assert_ok(gopt_net_buffer_info(net, 1, &bi));
    assert_string_equal(bi.name, "bn1.running_var");
    assert_int_equal(bi.layer, 1);
    assert_status(gopt_net_buffer_info(net, 18, &bi), GOPT_ERANGE, "18");
    assert_status(gopt_net_buffer_info(net, -1, &bi), GOPT_ERANGE, NULL);
    assert_status(gopt_net_find_buffer(net, "bn1.running_mea", &v), GOPT_ERANGE, "bn1.running_mea");
    assert_status(gopt_net_find_buffer(net, NULL, &v), GOPT_EINVAL, "name");
    int idx;
    assert_status(gopt_params_find(gopt_net_params(net), "bn1.running_mean", &idx), GOPT_ERANGE, "gopt_net_find_buffer");
    assert_status(gopt_params_find(gopt_net_params(net), "bn1.runnin", &idx), GOPT_ERANGE, "no tensor named 'bn1.runnin'");
    /* the buffer is what eval-mode forwards use */
    gopt_net_set_training(net, 0);
    gopt_tensor *x = NULL;
    int64_t xs[4] = {1, 3, 32, 32};
    assert_ok(gopt_tensor_create(4, xs, &x));
    fill_pattern(x->data, x->numel, 1.0f);
    gopt_tensor lg;
    assert_ok(gopt_net_forward(net, x, &lg));
    float l0 = lg.data[0];
    gopt_tensor rm;
    assert_ok(gopt_net_find_buffer(net, "layers.2.bn2.running_mean", &rm));
    for (int64_t k = 0; k < rm.numel; k++) rm.data[k] = 3.0f;
    assert_ok(gopt_net_forward(net, x, &lg));
    assert_true(lg.data[0] != l0);
    gopt_tensor_destroy(x);
    gopt_net_destroy(net);
}

/* ---- malformed files: a tiny net (fc 4->3, batchnorm1d 3) ----------------------------------- */

static gopt_net *tiny_net(void) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = 2;
    nc.in_ndim = 1;
    nc.in_shape[0] = 4;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&nc, &net));
    gopt_layer_config lc = gopt_layer_linear(4, 3, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    lc = gopt_layer_batchnorm1d(3);
    assert_ok(gopt_net_add(net, &lc, "bn"));
    assert_ok(gopt_net_build(net));
    perturb_buffers(net, 0.5f);
    return net;
}

/* A file from a header and `data` bytes of pattern (header padded to 8 unless raw). */
static unsigned char *mkfile(const char *header, size_t data, size_t *size) {
    size_t hl = strlen(header);
    size_t pad = (8 - hl % 8) % 8;
    *size = 8 + hl + pad + data;
    unsigned char *b = calloc(1, *size + 1);
    uint64_t h = hl + pad;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, ' ', pad);
    for (size_t i = 0; i < data; i++) b[8 + hl + pad + i] = (unsigned char)(0x3c + (i % 3)); /* floats near 0.01 */
    return b;
}

#define GOOD_TAIL                                                                                           \
    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]},"                               \
    "\"bn.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"                             \
    "\"bn.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]},"                               \
    "\"bn.running_mean\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[84,96]},"                       \
    "\"bn.running_var\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[96,108]},"                       \
    "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[108,116]}}"
#define GOOD "{\"__metadata__\":{\"format\":\"pt\"},\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}," GOOD_TAIL

typedef struct bad_case {
    const char *what;
    const char *header; /* NULL: raw bytes below */
    size_t data;
    gopt_status want;
    const char *needle;
} bad_case;

static void test_refusals(void **state) {
    (void)state;
    gopt_net *net = tiny_net();
    int64_t n0;
    float *before = snapshot(net, &n0);
    size_t size;
    unsigned char *good = mkfile(GOOD, 116, &size);
    gopt_weights_config strict = gopt_weights_config_default();
    /* the good file loads (into a copy: the refusals below need the original values) */
    gopt_net *other = tiny_net();
    assert_ok(gopt_net_load_safetensors_mem(other, good, size, "good.st", &strict, NULL));
    gopt_tensor rm;
    assert_ok(gopt_net_find_buffer(other, "bn.running_mean", &rm));
    float f;
    memcpy(&f, good + 8 + (size - 8 - 116) + 84, 4);
    assert_true(rm.data[0] == f);
    gopt_net_destroy(other);

    static const bad_case cases[] = {
        {"header larger than the file", NULL, 0, GOPT_EFORMAT, "claims"},
        {"shorter than 8 bytes", NULL, 1, GOPT_EFORMAT, "shorter"},
        {"overlap", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
                    "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[40,52]},"
                    "\"bn.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[52,64]},"
                    "\"bn.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[64,76]},"
                    "\"bn.running_mean\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[76,88]},"
                    "\"bn.running_var\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[88,100]}}",
         100, GOPT_EFORMAT, "overlap"},
        {"out of range", GOOD, 108, GOPT_EFORMAT, "bn.num_batches_tracked"},
        {"offsets not matching the shape",
         "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,44]}," GOOD_TAIL, 116, GOPT_EFORMAT,
         "fc.weight"},
        {"hole", GOOD, 120, GOPT_EFORMAT, "belong to no tensor"},
        {"unknown dtype", "{\"fc.weight\":{\"dtype\":\"F8_E9\",\"shape\":[3,4],\"data_offsets\":[0,48]}," GOOD_TAIL,
         116, GOPT_EFORMAT, "unknown dtype 'F8_E9'"},
        {"integer dtype for a float tensor",
         "{\"fc.weight\":{\"dtype\":\"I32\",\"shape\":[3,4],\"data_offsets\":[0,48]}," GOOD_TAIL, 116, GOPT_EFORMAT,
         "fc.weight' is I32"},
        {"shape mismatch", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]}," GOOD_TAIL,
         116, GOPT_ESHAPE, "'fc.weight' has shape (4,3) in the file, (3,4) in the net"},
        {"missing tensor", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
                           "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]},"
                           "\"bn.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"
                           "\"bn.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]},"
                           "\"bn.running_mean\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[84,96]}}",
         96, GOPT_EFORMAT, "'bn.running_var' of the net is missing"},
        {"unexpected tensor", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
                              "\"extra\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[116,120]}," GOOD_TAIL,
         120, GOPT_EFORMAT, "'extra' is not in the net"},
        {"duplicate", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
                      "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[116,128]}," GOOD_TAIL,
         128, GOPT_EFORMAT, "'fc.bias' appears twice"},
        {"count of two elements",
         "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
         "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]},"
         "\"bn.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[60,72]},"
         "\"bn.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[72,84]},"
         "\"bn.running_mean\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[84,96]},"
         "\"bn.running_var\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[96,108]},"
         "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[108,124]}}",
         124, GOPT_EFORMAT, "bn.num_batches_tracked' must be one number"},
        {"truncated JSON", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4", 0, GOPT_EFORMAT, "fc.weight"},
        {"negative dimension", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[-3,4],\"data_offsets\":[0,48]}}", 48,
         GOPT_EFORMAT, "non-negative"},
        {"not an object", "[1,2]", 0, GOPT_EFORMAT, "'{'"},
        {"missing dtype", "{\"fc.weight\":{\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48, GOPT_EFORMAT,
         "needs dtype"},
        {"bytes after the object", "{}x", 0, GOPT_EFORMAT, "after the JSON"},
        {"lone surrogate", "{\"\\ud800\":{}}", 0, GOPT_EFORMAT, "surrogate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_case *c = &cases[i];
        unsigned char *b;
        size_t n;
        if (i == 0) { /* a length past the end */
            b = mkfile(GOOD, 116, &n);
            b[0] = 0xff;
            b[1] = 0xff;
        } else if (i == 1) {
            b = calloc(1, 8);
            n = 7;
        } else {
            b = mkfile(c->header, c->data, &n);
        }
        gopt_clear_error();
        gopt_status s = gopt_net_load_safetensors_mem(net, b, n, "bad.safetensors", &strict, NULL);
        if (s != c->want)
            fail_msg("%s: status %s, wanted %s (%s)", c->what, gopt_status_str(s), gopt_status_str(c->want),
                     gopt_last_error());
        if (!strstr(gopt_last_error(), c->needle) || !strstr(gopt_last_error(), "bad.safetensors"))
            fail_msg("%s: detail '%s' does not name '%s' and the file", c->what, gopt_last_error(), c->needle);
        int64_t n1;
        float *after = snapshot(net, &n1);
        if (memcmp(before, after, (size_t)n0 * sizeof(float)) != 0) fail_msg("%s: the net changed", c->what);
        free(after);
        /* the same bytes through a file path name the path */
        if (i == 8) {
            const char *path = tmp_path("bad.safetensors");
            write_bytes(path, b, n);
            assert_status(gopt_net_load_safetensors(net, path, NULL, NULL), GOPT_ESHAPE, path);
            unlink(path);
        }
        free(b);
    }
    free(good);
    free(before);
    gopt_net_destroy(net);
}

static void test_non_strict(void **state) {
    (void)state;
    gopt_net *net = tiny_net();
    gopt_tensor rv;
    assert_ok(gopt_net_find_buffer(net, "bn.running_var", &rv));
    const float rv0 = rv.data[1];
    size_t n;
    unsigned char *b = mkfile("{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
                              "\"extra\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[48,52]}}",
                              52, &n);
    gopt_weights_config c = gopt_weights_config_default();
    c.strict = 0;
    gopt_weights_report r;
    assert_ok(gopt_net_load_safetensors_mem(net, b, n, "partial", &c, &r));
    assert_int_equal(r.loaded, 1);
    assert_int_equal(r.missing, 5);
    assert_int_equal(r.unexpected, 1);
    assert_string_equal(r.text, "missing: fc.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var; unexpected: extra");
    assert_true(rv.data[1] == rv0);
    gopt_param_info pi;
    assert_ok(gopt_params_info(gopt_net_params(net), 0, &pi));
    float f;
    memcpy(&f, b + n - 52, 4);
    assert_true(pi.value.data[0] == f);
    c.names = (gopt_weights_names)7;
    assert_status(gopt_net_load_safetensors_mem(net, b, n, "x", &c, NULL), GOPT_EINVAL, "names");
    free(b);
    gopt_net_destroy(net);
}

/* F16, BF16 and F64 are converted to float. */
static void test_dtypes(void **state) {
    (void)state;
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t s4[1] = {4};
    assert_ok(gopt_params_add(p, "h", 1, s4, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "b", 1, s4, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "d", 1, s4, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_finalize(p));
    size_t n;
    unsigned char *b = mkfile("{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                              "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[8,16]},"
                              "\"d\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[16,48]}}",
                              48, &n);
    unsigned char *d = b + n - 48;
    const uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7c00}; /* 1, -2, 2^-24, inf */
    const uint16_t bf[4] = {0x3f80, 0xbfc0, 0x4049, 0x0000}; /* 1, -1.5, 3.140625, 0 */
    const double dv[4] = {0.1, -1e30, 1e-50, 123456789.0};
    memcpy(d, h, 8);
    memcpy(d + 8, bf, 8);
    memcpy(d + 16, dv, 32);
    const char *path = tmp_path("dtypes.safetensors");
    write_bytes(path, b, n);
    assert_ok(gopt_params_load_safetensors(p, path, NULL, NULL));
    const float *v = gopt_params_values(p);
    assert_true(v[0] == 1.0f && v[1] == -2.0f && v[2] == ldexpf(1.0f, -24) && isinf(v[3]) && v[3] > 0);
    assert_true(v[4] == 1.0f && v[5] == -1.5f && v[6] == 3.140625f && v[7] == 0.0f);
    assert_true(v[8] == 0.1f && v[9] == -1e30f && v[10] == 0.0f && v[11] == 123456789.0f);
    unlink(path);
    free(b);
    gopt_params_destroy(p);
}

/* Arguments and state: NULL, an unbuilt net, a bad names value. */
static void test_arguments(void **state) {
    (void)state;
    gopt_net_config nc = gopt_net_config_default();
    nc.in_ndim = 1;
    nc.in_shape[0] = 4;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&nc, &net));
    gopt_layer_config lc = gopt_layer_linear(4, 3, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    const char *path = tmp_path("unbuilt.safetensors");
    assert_status(gopt_net_save_safetensors(net, path, NULL), GOPT_ESTATE, "not finalized");
    assert_status(gopt_net_save_npz(net, path, NULL), GOPT_ESTATE, "not finalized");
    assert_status(gopt_net_load_safetensors(net, path, NULL, NULL), GOPT_ESTATE, "not finalized");
    assert_status(gopt_net_load_safetensors_mem(net, "", 0, NULL, NULL, NULL), GOPT_ESTATE, "not built");
    assert_int_equal(access(path, F_OK), -1);
    assert_ok(gopt_net_build(net));
    assert_status(gopt_net_save_safetensors(NULL, path, NULL), GOPT_EINVAL, "net");
    assert_status(gopt_net_save_safetensors(net, NULL, NULL), GOPT_EINVAL, "path");
    assert_status(gopt_net_load_safetensors(NULL, path, NULL, NULL), GOPT_EINVAL, "net");
    assert_status(gopt_net_load_safetensors_mem(net, NULL, 3, NULL, NULL, NULL), GOPT_EINVAL, "data");
    assert_status(gopt_net_load_safetensors_mem(net, "", 0, NULL, NULL, NULL), GOPT_EFORMAT, "<memory>");
    assert_status(gopt_params_save_safetensors(NULL, path), GOPT_EINVAL, "p");
    assert_status(gopt_net_torch_name(net, NULL, NULL, 0), GOPT_EINVAL, "name");
    gopt_weights_config c = gopt_weights_config_default();
    c.names = (gopt_weights_names)-1;
    assert_status(gopt_net_save_safetensors(net, path, &c), GOPT_EINVAL, "names");
    assert_status(gopt_net_save_npz(net, path, &c), GOPT_EINVAL, "names");
    assert_int_equal(access(path, F_OK), -1);
    gopt_net_destroy(net);
}

/* ---- .npz layout ---------------------------------------------------------------------------- */

static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static uint32_t crc32_ref(const unsigned char *p, size_t n) { /* bitwise, independent of the library's table */
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void test_npz_layout(void **state) {
    (void)state;
    gopt_net *net = tiny_net();
    const char *path = tmp_path("w.npz");
    assert_ok(gopt_net_save_npz(net, path, NULL));
    size_t size;
    unsigned char *b = read_file(path, &size);
    const unsigned char *e = b + size - 22;
    assert_int_equal(rd32(e), 0x06054b50u);
    assert_int_equal(rd16(e + 10), 7); /* 6 tensors + num_batches_tracked */
    uint32_t cd = rd32(e + 16);
    const unsigned char *c = b + cd;
    int seen = 0;
    for (int i = 0; i < 7; i++) {
        assert_int_equal(rd32(c), 0x02014b50u);
        uint32_t crc = rd32(c + 16), sz = rd32(c + 20), nl = rd16(c + 28), off = rd32(c + 42);
        const unsigned char *l = b + off;
        assert_int_equal(rd32(l), 0x04034b50u);
        assert_int_equal(rd16(l + 8), 0); /* stored */
        const unsigned char *member = l + 30 + rd16(l + 26);
        assert_int_equal(crc32_ref(member, sz), crc);
        assert_memory_equal(member, "\x93NUMPY\x01\x00", 8);
        assert_int_equal((10 + rd16(member + 8)) % 64, 0);
        if (nl == strlen("fc.weight.npy") && memcmp(c + 46, "fc.weight.npy", nl) == 0) {
            assert_non_null(strstr((const char *)member + 10, "'descr': '<f4', 'fortran_order': False, 'shape': (3,4)"));
            gopt_param_info pi;
            assert_ok(gopt_params_info(gopt_net_params(net), 0, &pi));
            assert_memory_equal(member + 10 + rd16(member + 8), pi.value.data, 48);
            seen++;
        }
        if (nl == strlen("bn.running_var.npy") && memcmp(c + 46, "bn.running_var.npy", nl) == 0) {
            assert_non_null(strstr((const char *)member + 10, "'shape': (3,)"));
            seen++;
        }
        if (nl == strlen("bn.num_batches_tracked.npy") && memcmp(c + 46, "bn.num_batches_tracked.npy", nl) == 0) {
            assert_non_null(strstr((const char *)member + 10, "'descr': '<i8', 'fortran_order': False, 'shape': ()"));
            seen++;
        }
        c += 46 + nl;
    }
    assert_int_equal(seen, 3);
    free(b);
    /* an unwritable path: EIO naming it, nothing left behind */
    assert_status(gopt_net_save_npz(net, "/nonexistent/dir/w.npz", NULL), GOPT_EIO, "/nonexistent/dir/w.npz");
    assert_status(gopt_net_save_safetensors(net, "/nonexistent/dir/w.st", NULL), GOPT_EIO, "/nonexistent/dir");
    unlink(path);
    gopt_net_destroy(net);
}

/* ---- allocation failure (alloc_fail.h): every site of save and load ------------------------- */

static void setup_tiny(fx *f) {
    f->net = tiny_net();
    snprintf(f->path, sizeof f->path, "%s", tmp_path("af.safetensors"));
}
static void setup_tiny_file(fx *f) {
    setup_tiny(f);
    assert_ok(gopt_net_save_safetensors(f->net, f->path, NULL));
}
static gopt_status call_save(fx *f) { return gopt_net_save_safetensors(f->net, f->path, NULL); }
static gopt_status call_save_npz(fx *f) { return gopt_net_save_npz(f->net, f->path, NULL); }
static gopt_status call_load(fx *f) { return gopt_net_load_safetensors(f->net, f->path, NULL, NULL); }
static void no_out(fx *f) {
    (void)f;
    struct stat st;
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    if (stat(tmp, &st) == 0) fail_msg("a failed write left %s", tmp);
}
static void ok_nothing(fx *f) { (void)f; }

static void test_alloc_fail(void **state) {
    (void)state;
    install_counter();
    const acase cases[] = {
        {"save safetensors", setup_tiny, call_save, no_out, ok_nothing, NULL},
        {"save npz", setup_tiny, call_save_npz, no_out, ok_nothing, NULL},
        {"load safetensors", setup_tiny_file, call_load, no_out, ok_nothing, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run(&cases[i]);
    gopt_set_allocator(NULL);
}

/* ---- PyTorch (not unit) ------------------------------------------------------------------- */

static int run_script(const char *python, const char *script, const char *mode, const char *dir, const char *repo) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s '%s' '%s'", python, script, mode, dir, repo);
    fflush(stdout);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

/* N eval-mode logits of net on x. */
static void eval_logits(gopt_net *net, const gopt_tensor *x, float *out, int64_t n) {
    gopt_net_set_training(net, 0);
    gopt_tensor lg;
    if (gopt_net_forward(net, x, &lg) != GOPT_OK) {
        fprintf(stderr, "forward: %s\n", gopt_last_error());
        exit(1);
    }
    memcpy(out, lg.data, (size_t)n * sizeof(float));
}

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            fprintf(stderr, __VA_ARGS__);                 \
            fprintf(stderr, " (%s)\n", gopt_last_error()); \
            return 1;                                     \
        }                                                 \
    } while (0)

static int torch_main(const char *python, const char *script, const char *dir, const char *repo) {
    mkdir(dir, 0755);
    char path[3][600];
    snprintf(path[0], sizeof path[0], "%s/c_weights.safetensors", dir);
    snprintf(path[1], sizeof path[1], "%s/c_weights.npz", dir);
    snprintf(path[2], sizeof path[2], "%s/io.safetensors", dir);
    const int N = 16;
    gopt_net *net = NULL;
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = 8;
    rc.max_batch = N;
    rc.seed = 5;
    CHECK(gopt_resnet_cifar(&rc, &net) == GOPT_OK, "resnet");
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.05f;
    oc.momentum = 0.9f;
    gopt_optim *opt = NULL;
    CHECK(gopt_optim_create(&oc, gopt_net_params(net), &opt) == GOPT_OK, "optim");
    int64_t xs[4] = {N, 3, 32, 32}, ds[2] = {N, 10};
    gopt_tensor *x = NULL, *dl = NULL;
    CHECK(gopt_tensor_create(4, xs, &x) == GOPT_OK && gopt_tensor_create(2, ds, &dl) == GOPT_OK, "tensors");
    gopt_rng rng;
    gopt_rng_seed(&rng, 11);
    int32_t labels[16];
    for (int step = 0; step < 5; step++) { /* a few SGD steps on random data: weights and running stats move */
        CHECK(gopt_tensor_fill_normal(x, 0.0f, 1.0f, &rng) == GOPT_OK, "fill");
        for (int i = 0; i < N; i++) labels[i] = (int32_t)gopt_rng_below(&rng, 10);
        gopt_tensor lg;
        float loss;
        gopt_params_zero_grad(gopt_net_params(net));
        CHECK(gopt_net_forward(net, x, &lg) == GOPT_OK, "forward");
        CHECK(gopt_loss_cross_entropy(&lg, labels, 0.0f, &loss, dl) == GOPT_OK, "loss");
        CHECK(gopt_net_backward(net, dl) == GOPT_OK, "backward");
        CHECK(gopt_optim_step(opt) == GOPT_OK, "step");
        printf("C train step %d loss %.5f\n", step, loss);
    }
    CHECK(gopt_tensor_fill_normal(x, 0.0f, 1.0f, &rng) == GOPT_OK, "fill");
    float logits[16 * 10];
    eval_logits(net, x, logits, N * 10);
    gopt_weights_config wc = gopt_weights_config_default();
    wc.num_batches_tracked = 5;
    CHECK(gopt_net_save_safetensors(net, path[0], &wc) == GOPT_OK, "save");
    CHECK(gopt_net_save_npz(net, path[1], &wc) == GOPT_OK, "save npz");
    /* the batch and the C logits, as an arena of two tensors */
    gopt_params *io = NULL;
    int64_t ls[2] = {N, 10};
    CHECK(gopt_params_create(&io) == GOPT_OK, "io");
    CHECK(gopt_params_add(io, "x", 4, xs, GOPT_TAG_WEIGHT, NULL) == GOPT_OK, "x");
    CHECK(gopt_params_add(io, "logits", 2, ls, GOPT_TAG_WEIGHT, NULL) == GOPT_OK, "logits");
    CHECK(gopt_params_finalize(io) == GOPT_OK, "finalize");
    memcpy(gopt_params_values(io), x->data, (size_t)x->numel * sizeof(float));
    memcpy(gopt_params_values(io) + x->numel, logits, sizeof logits);
    CHECK(gopt_params_save_safetensors(io, path[2]) == GOPT_OK, "save io");
    int rc1 = run_script(python, script, "check", dir, repo);
    if (rc1 == 77) {
        printf("SKIPPED: PyTorch is not installed for %s\n", python);
        return 77;
    }
    CHECK(rc1 == 0, "the PyTorch side refused the C weights (exit %d)", rc1);
    /* reverse: weights written by PyTorch, imported here; PyTorch's logits on the same x */
    char tw[600], tl[600];
    snprintf(tw, sizeof tw, "%s/torch_weights.safetensors", dir);
    snprintf(tl, sizeof tl, "%s/torch_logits.safetensors", dir);
    gopt_net *net2 = NULL;
    rc.seed = 99;
    CHECK(gopt_resnet_cifar(&rc, &net2) == GOPT_OK, "resnet 2");
    gopt_weights_report rep;
    CHECK(gopt_net_load_safetensors(net2, tw, NULL, &rep) == GOPT_OK, "import the PyTorch weights");
    printf("imported %d tensors from PyTorch (missing %d, unexpected %d)\n", rep.loaded, rep.missing, rep.unexpected);
    float l2[16 * 10];
    eval_logits(net2, x, l2, N * 10);
    gopt_params *tp = NULL;
    CHECK(gopt_params_create(&tp) == GOPT_OK, "tp");
    CHECK(gopt_params_add(tp, "logits", 2, ls, GOPT_TAG_WEIGHT, NULL) == GOPT_OK && gopt_params_finalize(tp) == GOPT_OK,
          "tp add");
    CHECK(gopt_params_load_safetensors(tp, tl, NULL, NULL) == GOPT_OK, "PyTorch logits");
    const float *ref = gopt_params_values(tp);
    double maxd = 0, maxr = 0;
    for (int i = 0; i < N * 10; i++) {
        maxd = fmax(maxd, fabs((double)l2[i] - ref[i]));
        maxr = fmax(maxr, fabs((double)ref[i]));
    }
    printf("PyTorch -> C: max |logit diff| %.3g, max |logit| %.3g, relative %.3g\n", maxd, maxr, maxd / fmax(maxr, 1e-30));
    CHECK(maxr > 0 && maxd <= 1e-4 * maxr, "the imported PyTorch weights give other logits");
    gopt_params_destroy(tp);
    gopt_params_destroy(io);
    gopt_net_destroy(net2);
    gopt_optim_destroy(opt);
    gopt_tensor_destroy(x);
    gopt_tensor_destroy(dl);
    gopt_net_destroy(net);
    printf("interop with PyTorch: ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "--torch") == 0) return torch_main(argv[2], argv[3], argv[4], argv[5]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_resnet), cmocka_unit_test(test_roundtrip_params),
        cmocka_unit_test(test_torch_names),      cmocka_unit_test(test_buffers_by_name),
        cmocka_unit_test(test_refusals),         cmocka_unit_test(test_non_strict),
        cmocka_unit_test(test_dtypes),           cmocka_unit_test(test_npz_layout),
        cmocka_unit_test(test_arguments),        cmocka_unit_test(test_alloc_fail),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tmpdir[0]) rmdir(tmpdir);
    return rc;
}
