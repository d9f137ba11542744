/* main.c - placeholder until the listener core lands (issue 2). */
#include <stdio.h>
#include <string.h>

#include "cli_aws.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "aws-call") == 0)
        return cli_aws_call(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("ssmgate %s\n", SSMGATE_VERSION);
        return 0;
    }
    fprintf(stderr, "ssmgate: not built yet\n");
    return 1;
}
