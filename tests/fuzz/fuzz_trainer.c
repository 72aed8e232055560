/* fuzz_trainer: what `train_cifar10 --resume FILE` runs (examples/common/trainer.c's
 * trainer_load): the container, then every section of the trainer's checkpoint (params,
 * net, optim, monitor, accum, sched, warmup, counters, divergence, dist) and the task's
 * data position (task_cifar.c), into a small ResNet trainer with a warmup-then-plateau
 * schedule. A refused file must come with a message; an accepted one must train a step.
 * After each input the trainer is put back from its own checkpoint.
 * FZ_TRAINER_SEED=PATH writes that checkpoint (the seed of corpus/trainer) and exits. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "trainer.h"

static trainer *T;
static gopt_dataset *DS;
static char dir[64], pristine[128];

static void cleanup(void) {
    if (pristine[0]) unlink(pristine);
    if (dir[0]) rmdir(dir);
}

static void init(void) {
    FZ_CHECK(gopt_dataset_synthetic(16, 10, 3, &DS) == GOPT_OK, "dataset");
    trainer_config c = trainer_config_default();
    c.depth = 8;
    c.width = 0.25f;
    c.batch = 4;
    c.seed = 5;
    c.optim = gopt_optim_config_default(GOPT_ALGO_SGD);
    c.optim.momentum = 0.9f;
    c.schedule = SCHED_PLATEAU;
    c.total_steps = 8;
    c.warmup_steps = 2;
    c.clip_norm = 1.0;
    char err[512] = "";
    FZ_CHECK(trainer_create(&c, DS, NULL, &T, err, sizeof err) == 0, "trainer_create: %s", err);
    for (int i = 0; i < 3; i++) {
        trainer_step st;
        int done;
        FZ_CHECK(trainer_step_once(T, &st, &done, err, sizeof err) == 0, "step: %s", err);
    }
    const char *seed = getenv("FZ_TRAINER_SEED");
    if (seed) {
        FZ_CHECK(trainer_save(T, seed, "fuzz trainer", err, sizeof err) == 0, "save: %s", err);
        exit(0);
    }
    snprintf(dir, sizeof dir, "/tmp/gopt-fuzz-XXXXXX");
    FZ_CHECK(mkdtemp(dir), "mkdtemp");
    atexit(cleanup);
    snprintf(pristine, sizeof pristine, "%s/pristine.ck", dir);
    FZ_CHECK(trainer_save(T, pristine, "fuzz trainer", err, sizeof err) == 0, "save: %s", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!T) init();
    char err[512] = "";
    int rc = trainer_load(T, fz_file(data, size), err, sizeof err);
    fz_file_close();
    if (rc != 0) {
        FZ_CHECK(err[0] != '\0', "a refused checkpoint without a message");
    } else {
        trainer_step st;
        int done;
        (void)trainer_step_once(T, &st, &done, err, sizeof err);
    }
    FZ_CHECK(trainer_load(T, pristine, err, sizeof err) == 0, "restoring the trainer: %s", err);
    return 0;
}
