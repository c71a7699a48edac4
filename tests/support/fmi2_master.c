/* A minimal FMI 2.0 co-simulation master in C, as a non-Python tool (OpenModelica's
 * OMSimulator, Simulink) loads an FMU: dlopen the binary, instantiate, step, read outputs.
 *
 *   fmi2_master UNZIPPED_DIR GUID VR_CURRENT VR_SOC VR_VOLTAGE CURRENT_A STEP_S STEPS
 *
 * Prints "soc voltage" after the last step; exit 1 with the status on any failed call. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "fmi2Functions.h"

static void logger(fmi2ComponentEnvironment env, fmi2String name, fmi2Status status,
                   fmi2String category, fmi2String message, ...) {
    va_list args;
    va_start(args, message);
    fprintf(stderr, "[%s %d] ", category ? category : "", (int)status);
    vfprintf(stderr, message, args);
    fprintf(stderr, "\n");
    va_end(args);
}

#define LOAD(name) name##TYPE *name = (name##TYPE *)dlsym(lib, #name); \
    if (!name) { fprintf(stderr, "missing %s\n", #name); return 1; }
#define CHECK(call) do { fmi2Status s = (call); \
    if (s > fmi2Warning) { fprintf(stderr, "%s failed: %d\n", #call, (int)s); return 1; } } while (0)

int main(int argc, char **argv) {
    if (argc != 9) { fprintf(stderr, "usage: see the source\n"); return 2; }
    char path[4096], resources[4096];
    snprintf(path, sizeof path, "%s/binaries/linux64/EVBatteryTwin.so", argv[1]);
    snprintf(resources, sizeof resources, "file://%s/resources", argv[1]);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    LOAD(fmi2Instantiate) LOAD(fmi2SetupExperiment) LOAD(fmi2EnterInitializationMode)
    LOAD(fmi2ExitInitializationMode) LOAD(fmi2SetReal) LOAD(fmi2GetReal) LOAD(fmi2DoStep)
    LOAD(fmi2Terminate) LOAD(fmi2FreeInstance)
    fmi2CallbackFunctions callbacks = {logger, calloc, free, NULL, NULL};
    fmi2Component c = fmi2Instantiate("c-master", fmi2CoSimulation, argv[2], resources,
                                      &callbacks, fmi2False, fmi2True);
    if (!c) { fprintf(stderr, "fmi2Instantiate failed\n"); return 1; }
    fmi2ValueReference vr_in = (fmi2ValueReference)atoi(argv[3]);
    fmi2ValueReference vr_out[2] = {(fmi2ValueReference)atoi(argv[4]),
                                    (fmi2ValueReference)atoi(argv[5])};
    fmi2Real current = atof(argv[6]), h = atof(argv[7]), out[2];
    int steps = atoi(argv[8]);
    CHECK(fmi2SetupExperiment(c, fmi2False, 0.0, 0.0, fmi2False, 0.0));
    CHECK(fmi2EnterInitializationMode(c));
    CHECK(fmi2ExitInitializationMode(c));
    CHECK(fmi2SetReal(c, &vr_in, 1, &current));
    for (int k = 0; k < steps; k++) CHECK(fmi2DoStep(c, k * h, h, fmi2True));
    CHECK(fmi2GetReal(c, vr_out, 2, out));
    printf("%.17g %.17g\n", out[0], out[1]);
    CHECK(fmi2Terminate(c));
    fmi2FreeInstance(c);
    return 0;
}
