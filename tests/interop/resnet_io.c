/* resnet_io: the C side of tests/interop/trained_torch.py (ctest interop_train_cifar10_torch).
 *
 *   resnet_io logits DEPTH WEIGHTS X OUT:N   X: safetensors {"x": (N,3,32,32)}, N % 100 == 0;
 *       writes OUT {"logits": (N,10)}: the eval-mode logits of the CIFAR ResNet of DEPTH with
 *       WEIGHTS (safetensors, PyTorch names) imported, in batches of 100.
 *   resnet_io loss DEPTH WEIGHTS XB B      XB: {"x": (B,3,32,32), "y": (B) labels as floats};
 *       prints "loss L": the training-mode cross-entropy of one forward, the loss of a first
 *       step from WEIGHTS.
 * Every failure prints the library's detail and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

#define CHECK(call, what)                                                      \
    do {                                                                       \
        if ((call) != GOPT_OK) {                                               \
            fprintf(stderr, "resnet_io: %s: %s\n", (what), gopt_last_error()); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static gopt_net *resnet(int depth, int batch, const char *weights) {
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = depth;
    rc.max_batch = batch;
    rc.seed = 1234; /* any: every tensor is replaced */
    gopt_net *net;
    CHECK(gopt_resnet_cifar(&rc, &net), "gopt_resnet_cifar");
    gopt_weights_report rep;
    CHECK(gopt_net_load_safetensors(net, weights, NULL, &rep), weights);
    return net;
}

/* An arena holding the named tensors of a safetensors file (shapes known). */
static gopt_params *read_tensors(const char *path, int n, const char *const names[], const int nd[],
                                 const int64_t shapes[][4]) {
    gopt_params *p;
    CHECK(gopt_params_create(&p), "arena");
    for (int i = 0; i < n; i++) CHECK(gopt_params_add(p, names[i], nd[i], shapes[i], GOPT_TAG_WEIGHT, NULL), names[i]);
    CHECK(gopt_params_finalize(p), "arena");
    CHECK(gopt_params_load_safetensors(p, path, NULL, NULL), path);
    return p;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "logits") == 0) {
        const int depth = atoi(argv[2]);
        char out[1024]; /* "PATH:N": the script says how many images X holds */
        snprintf(out, sizeof out, "%s", argv[5]);
        char *colon = strrchr(out, ':');
        if (!colon) return fprintf(stderr, "resnet_io: OUT must be PATH:N\n"), 2;
        *colon = '\0';
        const int n = atoi(colon + 1);
        if (n < 100 || n % 100) return fprintf(stderr, "resnet_io: N = %d must be a multiple of 100\n", n), 2;
        gopt_net *net = resnet(depth, 100, argv[3]);
        const int64_t xs[1][4] = {{n, 3, 32, 32}};
        gopt_params *in = read_tensors(argv[4], 1, (const char *const[]){"x"}, (const int[]){4}, xs);
        gopt_params *lo;
        const int64_t ls[2] = {n, 10};
        CHECK(gopt_params_create(&lo), "arena");
        CHECK(gopt_params_add(lo, "logits", 2, ls, GOPT_TAG_WEIGHT, NULL), "logits");
        CHECK(gopt_params_finalize(lo), "arena");
        gopt_net_set_training(net, 0);
        for (int b = 0; b < n; b += 100) {
            gopt_tensor x, logits;
            CHECK(gopt_tensor_view(gopt_params_values(in) + (int64_t)b * 3 * 32 * 32, 4,
                                   (const int64_t[]){100, 3, 32, 32}, &x), "view");
            CHECK(gopt_net_forward(net, &x, &logits), "forward");
            memcpy(gopt_params_values(lo) + (int64_t)b * 10, logits.data, sizeof(float) * 100 * 10);
        }
        CHECK(gopt_params_save_safetensors(lo, out), out);
        gopt_params_destroy(lo);
        gopt_params_destroy(in);
        gopt_net_destroy(net);
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "loss") == 0) {
        const int depth = atoi(argv[2]), B = atoi(argv[5]);
        if (B < 1 || B > 1024) return fprintf(stderr, "resnet_io: B = %d out of range\n", B), 2;
        gopt_net *net = resnet(depth, B, argv[3]);
        const int64_t shapes[2][4] = {{B, 3, 32, 32}, {B}};
        gopt_params *in = read_tensors(argv[4], 2, (const char *const[]){"x", "y"}, (const int[]){4, 1}, shapes);
        const float *yf = gopt_params_values(in) + (int64_t)B * 3 * 32 * 32;
        int32_t *labels = malloc(sizeof *labels * (size_t)B);
        if (!labels) return 1;
        for (int i = 0; i < B; i++) labels[i] = (int32_t)yf[i];
        gopt_tensor x, logits;
        float loss;
        CHECK(gopt_tensor_view(gopt_params_values(in), 4, shapes[0], &x), "view");
        CHECK(gopt_net_forward(net, &x, &logits), "forward"); /* training mode: batch statistics */
        CHECK(gopt_loss_cross_entropy(&logits, labels, 0.0f, &loss, NULL), "loss");
        printf("loss %.9g\n", loss);
        free(labels);
        gopt_params_destroy(in);
        gopt_net_destroy(net);
        return 0;
    }
    fprintf(stderr, "usage: resnet_io logits DEPTH WEIGHTS X OUT:N | resnet_io loss DEPTH WEIGHTS XB B\n");
    return 2;
}
