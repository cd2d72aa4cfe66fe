/*
 * A signtool.exe double for tests/windows_wine.rs (the Windows SDK is not available here):
 * appends its command line to the file named by FAKE_SIGNTOOL_LOG and accepts the file,
 * or rejects it with FAKE_SIGNTOOL_REJECT's text and exit code 1 when that is set.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const char *log = getenv("FAKE_SIGNTOOL_LOG");
    const char *reject = getenv("FAKE_SIGNTOOL_REJECT");
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) {
        for (int i = 1; i < argc; i++)
            fprintf(f, i > 1 ? " %s" : "%s", argv[i]);
        fputc('\n', f);
        fclose(f);
    }
    if (reject && *reject) {
        printf("Verifying: %s\nSignTool Error: %s\n", argv[argc - 1], reject);
        return 1;
    }
    printf("Verifying: %s\nSuccessfully verified: %s\n", argv[argc - 1], argv[argc - 1]);
    return 0;
}
