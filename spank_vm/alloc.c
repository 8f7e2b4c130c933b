/* S_CTX_ALLOCATOR: sbatch and salloc, which always create a new job. */
#include "plugin.h"

int svm_alloc_init(spank_t sp, int ac, char **av)
{
	return svm_client_init(sp, ac, av);
}

int svm_alloc_post_opt(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	return svm_client_post_opt(sp, true);
}
