/*
 * Replay driver for fuzz targets in builds without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named on the command line (or
 * every file in a named directory), so the seed corpus and every crash found
 * earlier stay regression tests under gcc and the sanitizers.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path into a block of exactly its size (an overread by the target
 * then leaves the block, where the sanitizers see it) and runs it. */
static int replay_file(const char *path)
{
    int rc = -1;
    uint8_t *data = NULL;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        perror(path);
        goto out;
    }
    size_t len = (size_t)st.st_size;
    data = malloc(len > 0 ? len : 1);
    if (data == NULL || fread(data, 1, len, f) != len) {
        fprintf(stderr, "%s: could not read %zu bytes\n", path, len);
        goto out;
    }
    LLVMFuzzerTestOneInput(data, len);
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    free(data);
    return rc;
}

static int replay_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return replay_file(path);
    }
    DIR *dir = opendir(path);
    if (dir == NULL) {
        perror(path);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char child[4096];
        snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
        if (replay_path(child, count) != 0)
            rc = -1;
    }
    closedir(dir);
    return rc;
}

int main(int argc, char **argv)
{
    int count = 0, rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i], &count) != 0)
            rc = 1;
    printf("replayed %d inputs\n", count);
    return count == 0 ? 1 : rc;
}
