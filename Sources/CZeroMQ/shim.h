#ifndef CIRCUS_CZEROMQ_SHIM_H
#define CIRCUS_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
