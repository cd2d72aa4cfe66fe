/* STAND-IN for tests and demos, NOT the real Perry runtime.
 * Built as perry_runtime.dll next to the stand-in's exe; the exe imports this function. */
#include <stdio.h>

__declspec(dllexport) int perry_runtime_greet(const char *entry, const char *features) {
    printf("Hello from %s (built by the perry stand-in compiler)\n", entry);
    if (features != NULL && features[0] != '\0') {
        printf("features: %s\n", features);
    }
    fflush(stdout);
    return 0;
}
