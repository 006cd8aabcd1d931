/* hello-c: a sample package for sluice's builder tests. */
#include <stdio.h>

#ifndef VERSION
#error "build with -DVERSION=\"...\" (the Makefile does)"
#endif

int main(void)
{
	printf("hello from sluice, hello-c %s\n", VERSION);
	return 0;
}
