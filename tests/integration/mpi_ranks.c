/* An MPI program for the tests: each rank prints its rank, the world size,
 * the sum of (rank + 1) over all ranks (MPI_Allreduce), what a ring of
 * point-to-point messages carried around, and the boot id of the kernel it
 * runs on. Exits 1 if the world is not SLURM_NTASKS ranks: MPICH runs
 * singletons silently when PMI fails. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void boot_id(char *out, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	if (f == NULL || fgets(out, (int)len, f) == NULL)
		snprintf(out, len, "unknown");
	if (f != NULL)
		fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

int main(int argc, char **argv)
{
	const char *ntasks = getenv("SLURM_NTASKS");
	int rank, size, sum = 0, one, token = 0;
	char id[64];

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	one = rank + 1;
	MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	/* A ring: rank 0 starts the token, each rank adds its rank + 1. */
	if (size > 1) {
		if (rank == 0) {
			token = 1;
			MPI_Send(&token, 1, MPI_INT, 1, 0, MPI_COMM_WORLD);
			MPI_Recv(&token, 1, MPI_INT, size - 1, 0, MPI_COMM_WORLD,
			         MPI_STATUS_IGNORE);
		} else {
			MPI_Recv(&token, 1, MPI_INT, rank - 1, 0, MPI_COMM_WORLD,
			         MPI_STATUS_IGNORE);
			token += rank + 1;
			MPI_Send(&token, 1, MPI_INT, (rank + 1) % size, 0, MPI_COMM_WORLD);
		}
	}
	boot_id(id, sizeof(id));
	printf("rank=%d size=%d sum=%d ring=%d boot_id=%s\n", rank, size, sum, token, id);
	fflush(stdout);
	/* Every message delivered before anyone finalizes. MPICH 4.0.2 can
	 * still deadlock in MPI_Finalize (README, "Known problems"). */
	MPI_Barrier(MPI_COMM_WORLD);
	MPI_Finalize();
	return ntasks != NULL && atoi(ntasks) != size;
}
