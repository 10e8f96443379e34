/* The pod sandbox's pause container for the CRI test, built by the test: it waits for a
   signal, as registry.k8s.io/pause does. */
#include <signal.h>
#include <unistd.h>
static void done(int s) { (void)s; _exit(0); }
int main(void) { signal(SIGTERM, done); signal(SIGINT, done); for (;;) pause(); }
