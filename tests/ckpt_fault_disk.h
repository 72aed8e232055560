/* Part of test_ckpt_fault.c, included after its helpers: `test_ckpt_fault disk`.
 * In a private mount namespace (as root; otherwise as root of a new user namespace), each
 * test mounts its own small tmpfs:
 *   - a full disk: the free space swept page by page from 0 to one checkpoint, so that the
 *     header, the sections and the section table each fail once; every failure is GOPT_EIO
 *     saying "No space left", leaves no temporary file and the previous checkpoint as it was;
 *     with room enough the retry equals an unfailed save. A dead writer's large temporary
 *     file on a full disk: begin removes it first, so the save fits;
 *   - no inode left: the temporary file cannot be created (a clear error, old file intact),
 *     and a dead writer's file is removed first to make room;
 *   - a read-only mount (`-o ro`): begin fails with "read-only file system", the old file
 *     intact; writable again, the retry works and removes what a dead writer left.
 * When no namespace or mount can be made, the process says why and exits 77 (ctest SKIP). */
#include <sched.h>
#include <sys/mount.h>

static char mnt[600];

static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* NULL, or why not (in why). */
static const char *enter_mount_namespace(char *why, size_t n) {
    if (unshare(CLONE_NEWNS) != 0) {
        int first = errno;
        unsigned uid = (unsigned)getuid(), gid = (unsigned)getgid();
        char map[64];
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            snprintf(why, n, "unshare(CLONE_NEWNS): %s; unshare(CLONE_NEWUSER | CLONE_NEWNS): %s", strerror(first),
                     strerror(errno));
            return why;
        }
        snprintf(map, sizeof map, "0 %u 1", uid);
        int bad = write_text("/proc/self/setgroups", "deny") != 0 || write_text("/proc/self/uid_map", map) != 0;
        snprintf(map, sizeof map, "0 %u 1", gid);
        if (bad || write_text("/proc/self/gid_map", map) != 0) {
            snprintf(why, n, "a user namespace, but its uid/gid map: %s", strerror(errno));
            return why;
        }
    }
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(why, n, "making the mounts private: %s", strerror(errno));
        return why;
    }
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0755") != 0) {
        snprintf(why, n, "mounting a tmpfs: %s", strerror(errno));
        return why;
    }
    return NULL;
}

static test_dir mount_small_tmpfs(const char *name, const char *options) {
    test_dir d = joined(mnt, name);
    assert_int_equal(mkdir(d.path, 0755), 0);
    if (mount("tmpfs", d.path, "tmpfs", 0, options) != 0) fail_msg("mount tmpfs -o %s: %s", options, strerror(errno));
    return d;
}

/* A child that begins a checkpoint of path, writes `bytes` into it and dies (SIGKILL). */
static void dead_writer(const char *path, size_t bytes) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gopt_ckpt_writer *w = NULL;
        void *data = calloc(1, bytes ? bytes : 1);
        CHILD_CHECK(data && gopt_ckpt_writer_begin(path, &w) == GOPT_OK, "begin");
        CHILD_CHECK(gopt_ckpt_writer_add(w, "data", data, bytes) == GOPT_OK, "add");
        raise(SIGKILL);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* Grow `fd` with zero pages until the file system is full; returns the size reached. */
static off_t fill_up(int fd) {
    static unsigned char chunk[1 << 16];
    off_t size = 0;
    for (;;) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n > 0) {
            size += n;
            continue;
        }
        assert_true(n < 0 && errno == ENOSPC);
        return size;
    }
}

static void expect_failed_save(const model *m, const char *dir, const char *path, size_t pad, const char *cause,
                               const unsigned char *prev, size_t prev_size) {
    gopt_clear_error();
    gopt_status s = model_save(m, path, pad);
    if (s != GOPT_EIO) fail_msg("status %d, wanted GOPT_EIO: %s", (int)s, gopt_last_error());
    if (!strstr(gopt_last_error(), cause) || !strstr(gopt_last_error(), path))
        fail_msg("the message does not say '%s' and name the path: %s", cause, gopt_last_error());
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    assert_true(same_bytes(path, prev, prev_size));
}

static void test_disk_full(void **state) {
    (void)state;
    test_dir td = mount_small_tmpfs("full", "size=4m,mode=0755");
    const char *dir = td.path;
    test_dir path_ = joined(dir, "ck.bin"), ref_ = joined(workdir, "ref_full.bin");
    const char *path = path_.path, *ref = ref_.path;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    model m;
    model_make(&m);
    /* a last section sized so that the section table (4 entries, 352 bytes) straddles a page */
#define ALIGN16(x) (((x) + 15) & ~(size_t)15)
    size_t step_at = ALIGN16(ALIGN16(64 + gopt_params_state_size(m.params)) + gopt_optim_state_size(m.opt));
    size_t pad_at = ALIGN16(step_at + 8), table_at = pad_at + 16;
    while (table_at % page != page - 176) table_at += 16;
    size_t pad = table_at - pad_at;
    model_steps(&m, 3);
    assert_ok(model_save(&m, path, pad));
    size_t prev_size, want_size;
    unsigned char *prev = read_all(path, &prev_size);
    model_steps(&m, 2);
    assert_ok(model_save(&m, ref, pad));
    unsigned char *want = read_all(ref, &want_size);
    assert_int_equal(want_size, table_at + 352);
    int fd = open(in_dir(dir, "filler"), O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    off_t full = fill_up(fd);
    size_t needed = (want_size + page - 1) / page, fits_at = 0, failures = 0;
    int seen_header = 0, seen_section = 0, seen_table = 0;
    for (size_t free_pages = 0; free_pages <= needed + 2; free_pages++) {
        assert_int_equal(ftruncate(fd, full - (off_t)(free_pages * page)), 0);
        gopt_clear_error();
        gopt_status s = model_save(&m, path, pad);
        if (s == GOPT_OK) {
            fits_at = free_pages;
            break;
        }
        failures++;
        assert_int_equal(s, GOPT_EIO);
        const char *e = gopt_last_error();
        if (!strstr(e, "No space left on device") || !strstr(e, path)) fail_msg("unclear: %s", e);
        seen_header |= strstr(e, "writing the header") != NULL;
        seen_section |= strstr(e, "writing section") != NULL;
        seen_table |= strstr(e, "section table") != NULL;
        assert_int_equal(count_temps(dir, "ck.bin"), 0);
        assert_true(same_bytes(path, prev, prev_size));
    }
    printf("full disk: %zu saves failed with 0..%zu free pages (header %d, sections %d, table %d), the save fit "
           "with %zu free pages (a checkpoint of %zu bytes)\n",
           failures, fits_at ? fits_at - 1 : 0, seen_header, seen_section, seen_table, fits_at, want_size);
    assert_int_equal(fits_at, needed); /* not a page more than the file itself */
    assert_true(seen_header && seen_section && seen_table);
    assert_true(same_bytes(path, want, want_size)); /* the retry wrote what an unfailed save wrote */
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    /* full again, with a dead writer's temporary file of 2 MB: begin removes it first */
    assert_int_equal(ftruncate(fd, full - (off_t)(2 * needed * page)), 0);
    dead_writer(path, 2 * needed * page - page);
    assert_int_equal(count_temps(dir, "ck.bin"), 1);
    assert_true(lseek(fd, 0, SEEK_END) >= 0);
    fill_up(fd); /* no free page but the dead writer's */
    assert_ok(model_save(&m, path, pad));
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    assert_true(same_bytes(path, want, want_size));
    close(fd);
    free(prev);
    free(want);
    model_free(&m);
    assert_int_equal(umount(dir), 0);
}

/* The common start of a disk test: a small tmpfs with a checkpoint in it (prev), the model
 * one step further, and the bytes its next save must write (want, saved elsewhere). */
typedef struct disk_case {
    test_dir td, path_, ref_;
    const char *dir, *path;
    model m;
    unsigned char *prev, *want;
    size_t prev_size, want_size;
} disk_case;

static void disk_case_start(disk_case *c, const char *label, const char *options) {
    c->td = mount_small_tmpfs(label, options);
    c->dir = c->td.path;
    char ref_name[64];
    snprintf(ref_name, sizeof ref_name, "ref_%s.bin", label);
    c->path_ = joined(c->dir, "ck.bin");
    c->ref_ = joined(workdir, ref_name);
    c->path = c->path_.path;
    model_make(&c->m);
    assert_ok(model_save(&c->m, c->path, 0));
    c->prev = read_all(c->path, &c->prev_size);
    model_steps(&c->m, 1);
    assert_ok(model_save(&c->m, c->ref_.path, 0));
    c->want = read_all(c->ref_.path, &c->want_size);
}

static void disk_case_end(disk_case *c) {
    free(c->prev);
    free(c->want);
    model_free(&c->m);
    assert_int_equal(umount(c->dir), 0);
}

static void test_disk_no_inodes(void **state) {
    (void)state;
    disk_case c;
    disk_case_start(&c, "inodes", "size=4m,nr_inodes=16,mode=0755");
    const char *dir = c.dir, *path = c.path;
    int files = 0;
    for (;; files++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", files);
        int fd = open(in_dir(dir, name), O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) {
            assert_int_equal(errno, ENOSPC);
            break;
        }
        close(fd);
    }
    expect_failed_save(&c.m, dir, path, 0, "cannot create the temporary file", c.prev, c.prev_size);
    assert_non_null(strstr(gopt_last_error(), "No space left on device"));
    assert_int_equal(unlink(in_dir(dir, "f0")), 0);
    assert_ok(model_save(&c.m, path, 0));
    assert_true(same_bytes(path, c.want, c.want_size));
    /* the last inode taken by a writer that died: begin removes its file first */
    dead_writer(path, 1000);
    assert_int_equal(count_temps(dir, "ck.bin"), 1);
    assert_ok(model_save(&c.m, path, 0));
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    printf("no inode left (%d files): a clear error, the old file intact; a dead writer's file is removed first\n",
           files + 1);
    disk_case_end(&c);
}

static void test_disk_read_only(void **state) {
    (void)state;
    disk_case c;
    disk_case_start(&c, "ro", "size=4m,mode=0755");
    const char *dir = c.dir, *path = c.path;
    dead_writer(path, 5000);
    if (mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=4m") != 0) fail_msg("remount ro: %s", strerror(errno));
    gopt_clear_error();
    assert_int_equal(model_save(&c.m, path, 0), GOPT_EIO);
    const char *e = gopt_last_error();
    if (!strstr(e, "Read-only file system") || !strstr(e, "read-only file system") || !strstr(e, path))
        fail_msg("unclear: %s", e);
    printf("read-only mount: %s\n", e);
    assert_true(same_bytes(path, c.prev, c.prev_size));
    assert_int_equal(count_temps(dir, "ck.bin"), 1); /* the dead writer's, which cannot go now */
    if (mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=4m") != 0) fail_msg("remount rw: %s", strerror(errno));
    assert_ok(model_save(&c.m, path, 0));
    assert_true(same_bytes(path, c.want, c.want_size));
    assert_int_equal(count_temps(dir, "ck.bin"), 0);
    disk_case_end(&c);
}

static int setup_workdir(void **state);

static int disk_main(void) {
    if (setup_workdir(NULL) != 0) {
        perror("work directory");
        return 1;
    }
    snprintf(mnt, sizeof mnt, "%s/mnt", workdir);
    if (mkdir(mnt, 0755) != 0) {
        perror(mnt);
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork(); /* single-threaded (OpenBLAS may have started threads): unshare needs that */
    if (pid < 0) return 1;
    if (pid == 0) {
        char why[512];
        if (enter_mount_namespace(why, sizeof why)) {
            printf("SKIP: the full-disk, no-inode and read-only tests need a private mount namespace with a tmpfs, "
                   "and this process cannot make one: %s\n",
                   why);
            _exit(77);
        }
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_disk_full),
            cmocka_unit_test(test_disk_no_inodes),
            cmocka_unit_test(test_disk_read_only),
        };
        int failed = cmocka_run_group_tests_name("ckpt_fault_disk", tests, NULL, NULL);
        umount(mnt);
        _exit(failed ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    rm_rf(workdir); /* the mounts went with the namespace */
    if (WIFSIGNALED(status)) {
        printf("the disk tests were killed by signal %d\n", WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status);
}
