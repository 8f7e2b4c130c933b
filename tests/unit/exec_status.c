/* Runs a command and prints how it ended, "exited N" or "signaled N": a shell
 * cannot tell exit(137) from SIGKILL, a test of the proxy must. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int status;
	pid_t pid;

	if (argc < 2) {
		fprintf(stderr, "usage: exec_status COMMAND [ARGS...]\n");
		return 64;
	}
	pid = fork();
	if (pid < 0) {
		perror("exec_status: fork");
		return 70;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror("exec_status: execvp");
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid) {
		perror("exec_status: waitpid");
		return 70;
	}
	if (WIFSIGNALED(status))
		printf("signaled %d\n", WTERMSIG(status));
	else
		printf("exited %d\n", WEXITSTATUS(status));
	return 0;
}
