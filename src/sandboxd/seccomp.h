#ifndef IRIS_SECCOMP_H
#define IRIS_SECCOMP_H

/*
 * The seccomp filter of every sandbox, for bwrap --seccomp: a classic BPF
 * program (what libseccomp's seccomp_export_bpf writes) that makes the
 * kernel keyring calls (add_key, request_key, keyctl) fail with ENOSYS
 * and refuses every call of another ABI (32-bit x86, x32).  The kernel's
 * keyrings are not fully namespaced: a key a sandbox's uid could read
 * would outlive the sandbox and be readable by the next one that gets the
 * same host uid (Docker's default profile blocks the same calls).
 */

/*
 * A new memfd holding the program, at offset 0, close-on-exec.  Returns
 * it, or -1 (logged).
 */
int	seccomp_program_fd(void);

#endif
