// The host launcher's side of DJ_THREAD_ID (see common.cuh): the thread index
// the Rust launcher is running, per OS thread.
static thread_local unsigned long long dajia_tid = 0;
extern "C" unsigned long long dajia_host_thread_id(void) { return dajia_tid; }
extern "C" void dajia_host_set_thread_id(unsigned long long t) { dajia_tid = t; }
