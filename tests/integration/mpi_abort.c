/* A rank that dies: with "abort" rank 1 calls MPI_Abort(3), with "segv" it
 * is killed by SIGSEGV; rank 0 meanwhile waits for a message that never
 * comes. What Slurm does with the job then is what the test compares. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	int rank, token = 0;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 1 && argc > 1 && strcmp(argv[1], "abort") == 0)
		MPI_Abort(MPI_COMM_WORLD, 3);
	if (rank == 1)
		raise(SIGSEGV);
	MPI_Recv(&token, 1, MPI_INT, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	MPI_Finalize();
	return 0;
}
