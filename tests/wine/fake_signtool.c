/*
 * A signtool.exe double for tests/windows_wine.rs (the Windows SDK is not available here):
 * appends its command line to signtool.log beside itself and accepts the file, or rejects
 * it with exit code 1 and the text of reject.txt (beside itself) when that file exists.
 * It reads no environment: the worker's job process runs it with a bare one.
 */
#include <stdio.h>
#include <string.h>
#include <windows.h>

/* `name` in the folder of this exe. */
static void beside_me(const char *name, char *out, size_t size)
{
    DWORD n = GetModuleFileNameA(NULL, out, (DWORD)size);
    char *slash = n ? strrchr(out, '\\') : NULL;
    if (!slash || (size_t)(slash - out) + 1 + strlen(name) + 1 > size) {
        out[0] = 0;
        return;
    }
    strcpy(slash + 1, name);
}

int main(int argc, char **argv)
{
    char log_path[MAX_PATH], reject_path[MAX_PATH], reject[512] = "";
    beside_me("signtool.log", log_path, sizeof log_path);
    beside_me("reject.txt", reject_path, sizeof reject_path);
    FILE *f = log_path[0] ? fopen(log_path, "a") : NULL;
    if (f) {
        for (int i = 1; i < argc; i++)
            fprintf(f, i > 1 ? " %s" : "%s", argv[i]);
        fputc('\n', f);
        fclose(f);
    }
    FILE *r = reject_path[0] ? fopen(reject_path, "r") : NULL;
    if (r) {
        size_t n = fread(reject, 1, sizeof reject - 1, r);
        reject[n] = 0;
        fclose(r);
        printf("Verifying: %s\nSignTool Error: %s\n", argv[argc - 1], reject);
        return 1;
    }
    printf("Verifying: %s\nSuccessfully verified: %s\n", argv[argc - 1], argv[argc - 1]);
    return 0;
}
