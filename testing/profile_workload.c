// Workloads for the CPU profiler's tests and benchmark (testing/profile_workload.ts
// compiles this with -O1 -fno-omit-frame-pointer). Every mode exits after
// the given seconds (alarm), so a crashed test leaves nothing spinning.
//
//   work spin  SECONDS        main -> hot_middle -> hot_leaf, in user space
//   work sys   SECONDS        syscall loop: getppid, write to /dev/null
//   work mix   SECONDS        kernel-heavy mix: read /dev/zero, write /dev/null, getppid, stat,
//                             open/close, a pipe, page faults
//   work count SECONDS        hot_leaf for SECONDS, then prints the rounds done and its CPU time in ns
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

volatile unsigned long sink;
static volatile sig_atomic_t stop;

__attribute__((noinline)) void tick(void)
{
	sink++;
}

/*
 * Not a leaf (it calls tick): gcc 12 gives a leaf function no frame even with
 * -fno-omit-frame-pointer, and a frameless leaf hides its caller.
 */
__attribute__((noinline)) void hot_leaf(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		sink += i * 7;
		if ((i & 4095) == 0)
			tick();
	}
}

__attribute__((noinline)) void hot_middle(void)
{
	for (;;)
		hot_leaf(100000);
}

__attribute__((noinline)) void sys_loop(void)
{
	char buf[64] = { 0 };
	int fd = open("/dev/null", O_WRONLY);

	for (;;) {
		syscall(SYS_getppid);
		if (write(fd, buf, sizeof(buf)) < 0)
			exit(1);
	}
}

__attribute__((noinline)) void mix_loop(void)
{
	static char buf[65536];
	int zero = open("/dev/zero", O_RDONLY);
	int null = open("/dev/null", O_WRONLY);
	int p[2];
	struct stat st;

	if (zero < 0 || null < 0 || pipe(p) < 0)
		exit(1);
	for (;;) {
		if (read(zero, buf, sizeof(buf)) < 0 || write(null, buf, sizeof(buf)) < 0)
			exit(1);
		syscall(SYS_getppid);
		stat("/", &st);
		close(open("/dev/null", O_RDONLY));
		if (write(p[1], buf, 16384) < 0 || read(p[0], buf, 16384) < 0)
			exit(1);
		char *m = mmap(NULL, 1 << 18, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			exit(1);
		for (int i = 0; i < (1 << 18); i += 4096)
			m[i] = 1; /* page faults: zeroed pages */
		munmap(m, 1 << 18);
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	stop = 1;
}

__attribute__((noinline)) void count_loop(void)
{
	unsigned long rounds = 0;

	signal(SIGALRM, on_alarm);
	struct timespec cpu;

	while (!stop) {
		hot_leaf(10000);
		rounds++;
	}
	/*
	 * The CPU time this process got, interrupt work done while it ran
	 * included: other load on the host changes the rounds, not the rounds
	 * per CPU second.
	 */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	printf("%lu %llu\n", rounds, (unsigned long long)cpu.tv_sec * 1000000000ULL + (unsigned long long)cpu.tv_nsec);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "spin";
	unsigned seconds = argc > 2 ? (unsigned)atoi(argv[2]) : 60;

	alarm(seconds); /* default action: terminate */
	if (strcmp(mode, "sys") == 0)
		sys_loop();
	else if (strcmp(mode, "mix") == 0)
		mix_loop();
	else if (strcmp(mode, "count") == 0)
		count_loop();
	else
		hot_middle();
	return 0;
}
