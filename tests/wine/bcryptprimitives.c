/*
 * Stand-in for Windows' bcryptprimitives.dll, for running the worker under Debian 12's
 * wine 8, which lacks that DLL. Rust's std (and getrandom) import ProcessPrng from it;
 * this forwards to RtlGenRandom (SystemFunction036 in advapi32), which wine has.
 * Built with mingw by tests/support/wine.rs into the test's own wine prefix (system32).
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
