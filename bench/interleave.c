// interleave N cmd1... -- cmd2... -- ...: run the commands in turn, N rounds (so that load from other
// processes falls on each alike), and print each one's median and mean wall time in microseconds:
// fork + exec + wait, no shell and no `date` fork in the measurement. stdout/stderr go to /dev/null;
// a command that fails stops the run. Used by bench/hit_loop.sh and bench/rust_hit.sh.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/wait.h>
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: interleave N cmd... [-- cmd...]...\n"); return 2; }
    int n = atoi(argv[1]), k = 0;
    char **cmds[16];
    cmds[k++] = argv + 2;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            if (k == 16) { fprintf(stderr, "interleave: at most 16 commands\n"); return 2; }
            argv[i] = 0;
            cmds[k++] = argv + i + 1;
        }
    double *t = calloc((size_t)n * k, sizeof *t);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < k; c++) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            pid_t p = fork();
            if (p == 0) { int fd = open("/dev/null", O_WRONLY); dup2(fd, 1); dup2(fd, 2); execvp(cmds[c][0], cmds[c]); _exit(127); }
            int st; waitpid(p, &st, 0);
            clock_gettime(CLOCK_MONOTONIC, &b);
            if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "%s failed\n", cmds[c][0]); return 1; }
            t[c * n + r] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
        }
    for (int c = 0; c < k; c++) {
        double s = 0; for (int r = 0; r < n; r++) s += t[c * n + r];
        qsort(t + c * n, n, sizeof *t, cmp);
        printf("%s: median %.0f us, mean %.0f us\n", cmds[c][0], t[c * n + n / 2], s / n);
    }
    return 0;
}
