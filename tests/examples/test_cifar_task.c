#define _POSIX_C_SOURCE 200809L
/* The CIFAR side of the example trainer (examples/common/task_cifar.c): the airbench net
 * (its shape, names and parameter count), flip test-time augmentation (trainer_evaluate with
 * tta = 1 equals the logits of each image and of its mirror image averaged by hand) and the
 * refusal of a width that leaves a block without channels. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trainer.h"

enum { N = 40, CLASSES = 10 };

typedef struct fixture {
    float *x;
    int32_t *y;
    gopt_dataset *ds;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->x = malloc((size_t)N * 3072 * sizeof *f->x);
    f->y = malloc((size_t)N * sizeof *f->y);
    gopt_rng r;
    gopt_rng_seed(&r, 3);
    for (int64_t i = 0; i < (int64_t)N * 3072; i++) f->x[i] = gopt_rng_normal(&r);
    for (int i = 0; i < N; i++) f->y[i] = i % CLASSES;
    assert_int_equal(gopt_dataset_from_floats(f->x, N, 3, (const int64_t[]){3, 32, 32}, f->y, CLASSES,
                                              GOPT_DATA_BORROW, &f->ds),
                     GOPT_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    gopt_dataset_destroy(f->ds);
    free(f->x);
    free(f->y);
    free(f);
    return 0;
}

static trainer_config airbench_config(float width, int tta) {
    trainer_config c = trainer_config_default();
    c.arch = TRAINER_ARCH_AIRBENCH;
    c.width = width;
    c.batch = 16; /* 40 images: batches of 16, 16 and 8 in evaluation */
    c.augment = 0;
    c.tta = tta;
    c.total_steps = 10;
    return c;
}

/* conv (no bias) + BN (weight, bias) per layer, the linear layer without bias */
static int64_t airbench_params(int w1, int w2, int w3) {
    const int stem = 24, in[3] = {stem, w1, w2}, w[3] = {w1, w2, w3};
    int64_t n = 3 * 9 * stem + 2 * stem;
    for (int b = 0; b < 3; b++) n += (int64_t)in[b] * 9 * w[b] + 2 * w[b] + (int64_t)w[b] * 9 * w[b] + 2 * w[b];
    return n + (int64_t)w3 * CLASSES;
}

static void airbench_net_has_its_shape(void **state) {
    fixture *f = *state;
    const float widths[] = {0.125f, 0.5f};
    for (int k = 0; k < 2; k++) {
        trainer_config c = airbench_config(widths[k], 0);
        trainer *t = NULL;
        char err[512] = "";
        assert_int_equal(trainer_create(&c, f->ds, f->ds, &t, err, sizeof err), 0);
        gopt_net *net = trainer_net(t);
        const int w1 = (int)lroundf(64 * widths[k]), w2 = (int)lroundf(256 * widths[k]);
        assert_int_equal(gopt_params_numel(gopt_net_params(net)), airbench_params(w1, w2, w2));
        const char *names[] = {"stem.conv", "stem.bn",     "block1.conv1", "block1.pool", "block1.bn1",
                               "block1.conv2", "block3.bn2", "pool",         "fc"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            int idx;
            assert_int_equal(gopt_net_find_layer(net, names[i], &idx), GOPT_OK);
        }
        int64_t shape[3];
        assert_int_equal(gopt_net_out_shape(net, shape), 1);
        assert_int_equal(shape[0], CLASSES);
        trainer_destroy(t);
    }
}

static void airbench_refuses_an_empty_block(void **state) {
    fixture *f = *state;
    trainer_config c = airbench_config(0.005f, 0); /* 64 * 0.005 rounds to 0 channels */
    trainer *t = NULL;
    char err[512] = "";
    assert_int_not_equal(trainer_create(&c, f->ds, f->ds, &t, err, sizeof err), 0);
    assert_null(t);
    assert_non_null(strstr(err, "network: airbench at width 0.005 leaves its first block without channels"));
}

/* trainer_evaluate with tta = 1 against the average taken here: per batch of the evaluation
 * loader's order (unshuffled), forward the images and their mirror images in eval mode. */
static void tta_averages_the_mirror_image(void **state) {
    fixture *f = *state;
    trainer_config c = airbench_config(0.125f, 1);
    trainer *t = NULL;
    char err[512] = "";
    assert_int_equal(trainer_create(&c, f->ds, f->ds, &t, err, sizeof err), 0);
    gopt_net *net = trainer_net(t);
    double loss, acc, loss0, acc0;
    assert_int_equal(trainer_evaluate(t, f->ds, &loss, &acc, err, sizeof err), 0);

    float *img = malloc(16 * 3072 * sizeof *img), *mir = malloc(16 * 3072 * sizeof *mir);
    float *avg = malloc(16 * CLASSES * sizeof *avg);
    double loss_sum = 0, loss_plain = 0;
    int64_t correct = 0, correct_plain = 0;
    gopt_net_set_training(net, 0);
    for (int b0 = 0; b0 < N; b0 += 16) {
        const int n = N - b0 < 16 ? N - b0 : 16;
        memcpy(img, f->x + (int64_t)b0 * 3072, (size_t)n * 3072 * sizeof *img);
        for (int64_t r = 0; r < (int64_t)n * 96; r++)
            for (int j = 0; j < 32; j++) mir[r * 32 + j] = img[r * 32 + 31 - j];
        gopt_tensor x, logits;
        assert_int_equal(gopt_tensor_view(img, 4, (const int64_t[]){n, 3, 32, 32}, &x), GOPT_OK);
        assert_int_equal(gopt_net_forward(net, &x, &logits), GOPT_OK);
        for (int i = 0; i < n * CLASSES; i++) avg[i] = logits.data[i];
        float l;
        int64_t k;
        assert_int_equal(gopt_loss_cross_entropy(&logits, f->y + b0, 0.0f, &l, NULL), GOPT_OK);
        assert_int_equal(gopt_accuracy_count(&logits, f->y + b0, &k), GOPT_OK);
        loss_plain += (double)l * n;
        correct_plain += k;
        assert_int_equal(gopt_tensor_view(mir, 4, (const int64_t[]){n, 3, 32, 32}, &x), GOPT_OK);
        assert_int_equal(gopt_net_forward(net, &x, &logits), GOPT_OK);
        for (int i = 0; i < n * CLASSES; i++) avg[i] = 0.5f * (avg[i] + logits.data[i]);
        gopt_tensor a;
        assert_int_equal(gopt_tensor_view(avg, 2, (const int64_t[]){n, CLASSES}, &a), GOPT_OK);
        assert_int_equal(gopt_loss_cross_entropy(&a, f->y + b0, 0.0f, &l, NULL), GOPT_OK);
        assert_int_equal(gopt_accuracy_count(&a, f->y + b0, &k), GOPT_OK);
        loss_sum += (double)l * n;
        correct += k;
    }
    gopt_net_set_training(net, 1);
    assert_float_equal(loss, loss_sum / N, 1e-12);
    assert_float_equal(acc, (double)correct / N, 1e-12);
    /* and the plain evaluation of the same net (same seed) is the first pass alone */
    trainer_destroy(t);
    c.tta = 0;
    assert_int_equal(trainer_create(&c, f->ds, f->ds, &t, err, sizeof err), 0);
    assert_int_equal(trainer_evaluate(t, f->ds, &loss0, &acc0, err, sizeof err), 0);
    assert_float_equal(loss0, loss_plain / N, 1e-12);
    assert_float_equal(acc0, (double)correct_plain / N, 1e-12);
    assert_true(fabs(loss0 - loss) > 1e-6);
    trainer_destroy(t);
    free(img);
    free(mir);
    free(avg);
}

int main(void) {
    gopt_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(airbench_net_has_its_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(airbench_refuses_an_empty_block, setup, teardown),
        cmocka_unit_test_setup_teardown(tta_averages_the_mirror_image, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
