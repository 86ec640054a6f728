/*
 * Run a program under a seccomp deny-list, as systemd's SystemCallFilter= would apply it (see
 * test/deploy/ansible.test.ts): `seccomp-launch kill|eperm <nr>,<nr>,... -- program args...`.
 * A listed system call kills the process (systemd's default) or fails with EPERM
 * (SystemCallErrorNumber=EPERM); everything else is allowed.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "add this architecture's AUDIT_ARCH"
#endif

int main(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--") != 0) {
    fprintf(stderr, "usage: %s kill|eperm nr,nr,... -- program args...\n", argv[0]);
    return 2;
  }
  unsigned action = strcmp(argv[1], "eperm") == 0 ? (SECCOMP_RET_ERRNO | EPERM) : SECCOMP_RET_KILL_PROCESS;
  int nrs[512];
  int n = 0;
  for (char *p = strtok(argv[2], ","); p && n < 512; p = strtok(NULL, ",")) nrs[n++] = atoi(p);

  struct sock_filter f[4 + 2 * 512 + 1];
  int i = 0;
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  for (int k = 0; k < n; k++) {
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[k], 0, 1);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action);
  }
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {.len = (unsigned short)i, .filter = f};

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("seccomp");
    return 2;
  }
  execv(argv[4], argv + 4);
  perror("execv");
  return 2;
}
