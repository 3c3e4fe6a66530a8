// huatuo-bamai single-file loader. build.sh appends a payload to this program:
// the Deno runtime, the bundled agent and the files it needs (libbpf and its
// libraries, the BPF objects). At start each member is copied from our own file
// into a memfd (RAM: nothing is written to disk or $HOME), and the runtime is
// exec'd from its memfd to run the bundle; the other members reach the agent as
// /proc/self/fd/N paths in environment variables.
//
// Layout: <this ELF> <members...> <index> <trailer>. The index is text, one
// line per member, "<role> <offset> <length>": role "exec" is the runtime,
// "script" the bundle, anything else an environment variable to set to the
// member's path. The trailer is the last 32 bytes: MAGIC, then the index's
// offset and length as decimal numbers, space-padded.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "HUATUOSF"
#define TRAILER 32
#define MAX_MEMBERS 16
#ifndef MFD_EXEC
#define MFD_EXEC 0x10U // Linux 6.3; kernels with vm.memfd_noexec=1 refuse exec without it
#endif

static void die(const char *what) {
  fprintf(stderr, "huatuo-bamai: %s: %s\n", what, strerror(errno));
  exit(127);
}

static void die_format(const char *what) {
  fprintf(stderr, "huatuo-bamai: corrupt single-file payload: %s\n", what);
  exit(127);
}

// Copies [off, off+len) of self into a new sealed memfd, open across exec.
static int member_fd(int self, const char *name, off_t off, size_t len, int exec) {
  unsigned flags = MFD_ALLOW_SEALING;
  int fd = memfd_create(name, flags | (exec ? MFD_EXEC : 0));
  if (fd < 0 && errno == EINVAL && exec) fd = memfd_create(name, flags); // kernel older than 6.3
  if (fd < 0) die("memfd_create");
  while (len > 0) {
    ssize_t n = sendfile(fd, self, &off, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("copying a payload member into memory");
    len -= (size_t)n;
  }
  // Read-only from now on: nobody holding the fd can change what runs.
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) die("sealing");
  return fd;
}

int main(int argc, char **argv) {
  int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0) die("open /proc/self/exe (is /proc mounted?)");
  struct stat st;
  if (fstat(self, &st) < 0) die("fstat /proc/self/exe");

  char trailer[TRAILER + 1] = {0};
  if (st.st_size < TRAILER || pread(self, trailer, TRAILER, st.st_size - TRAILER) != TRAILER) {
    die_format("no trailer");
  }
  uint64_t index_off, index_len;
  if (memcmp(trailer, MAGIC, 8) != 0 ||
      sscanf(trailer + 8, "%" SCNu64 " %" SCNu64, &index_off, &index_len) != 2 ||
      index_len > 4096 || index_len > (uint64_t)st.st_size || index_off > (uint64_t)st.st_size - index_len) {
    die_format("bad trailer");
  }
  char index[4097] = {0};
  if (pread(self, index, index_len, (off_t)index_off) != (ssize_t)index_len) die_format("short index");

  int runtime = -1, script = -1, members = 0;
  for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
    char role[64];
    uint64_t off, len;
    if (sscanf(line, "%63s %" SCNu64 " %" SCNu64, role, &off, &len) != 3 || off > index_off ||
        len > index_off - off || ++members > MAX_MEMBERS) {
      die_format("bad index line");
    }
    int is_exec = strcmp(role, "exec") == 0;
    // The runtime's memfd name becomes the process name (comm): "memfd:huatuo-ba".
    int fd = member_fd(self, is_exec ? "huatuo-bamai" : role, (off_t)off, (size_t)len, is_exec);
    if (is_exec) {
      runtime = fd;
    } else if (strcmp(role, "script") == 0) {
      script = fd;
    } else {
      char path[32];
      snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
      if (setenv(role, path, 1) < 0) die("setenv");
    }
  }
  if (runtime < 0 || script < 0) die_format("no runtime or no script");

  // What the bundle+launcher build passed to `deno run`, plus --no-code-cache
  // (the code cache would be written under $DENO_DIR) and --ext=js (the
  // script's path has no extension, which Deno would transpile as TypeScript).
  static const char *const fixed[] = {
      "run",     "--allow-all", "--no-config", "--no-lock", "--cached-only", "--no-code-cache",
      "--quiet", "--ext=js",    "--v8-flags=--optimize-for-size",
  };
  const int nfixed = (int)(sizeof fixed / sizeof fixed[0]);
  char script_path[32];
  snprintf(script_path, sizeof script_path, "/proc/self/fd/%d", script);
  char **args = calloc((size_t)(argc + nfixed + 2), sizeof *args);
  if (!args) die("calloc");
  int n = 0;
  args[n++] = argv[0];
  for (int i = 0; i < nfixed; i++) args[n++] = (char *)fixed[i];
  args[n++] = script_path;
  for (int i = 1; i < argc; i++) args[n++] = argv[i];
  args[n] = NULL;

  // Deno keeps caches under DENO_DIR (default ~/.cache/deno); one it cannot
  // create makes it use memory instead, so nothing is written at start.
  setenv("DENO_DIR", "/dev/null/deno", 1);
  setenv("DENO_NO_UPDATE_CHECK", "1", 1);
  setenv("DENO_NO_PROMPT", "1", 1);
  extern char **environ;
  fexecve(runtime, args, environ);
  die("exec of the Deno runtime");
}
