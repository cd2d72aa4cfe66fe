/* STAND-IN for tests and demos, NOT the real Perry compiler output.
 * The console program that `perry compile` (stand-in) produces: it greets with the name of
 * the entry file it was "compiled" from. The greeting text lives in perry_runtime.dll so
 * the exe really imports a DLL (for the bundler's import-table tests). */
#include <stdio.h>

__declspec(dllimport) int perry_runtime_greet(const char *entry, const char *features);

extern const char perry_standin_entry[];
extern const char perry_standin_features[];

int main(void) {
    return perry_runtime_greet(perry_standin_entry, perry_standin_features);
}
