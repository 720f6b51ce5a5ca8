/*
 * QMP events: the emitter the generated qapi_event_send_*() functions call.
 * An event gets its timestamp here and goes to every monitor that finished
 * capability negotiation.  Emission is synchronous, so an event raised while
 * a command runs is queued before that command's reply (monitor.h
 * invariant 1).
 */
#include "monitor/monitor.h"

static MonitorEventSink *event_sink;
static void *event_sink_opaque;

void monitor_set_event_sink(MonitorEventSink *fn, void *opaque)
{
    event_sink = fn;
    event_sink_opaque = opaque;
}

static void send_one(Monitor *mon, void *opaque)
{
    monitor_send_json(mon, opaque);
}

void monitor_emit_event(const char *name, json_t *data)
{
    int64_t now = g_get_real_time();
    json_t *ev = json_object();

    json_object_set_new(ev, "timestamp",
                        json_pack("{s:I,s:I}", "seconds",
                                  (json_int_t)(now / G_USEC_PER_SEC),
                                  "microseconds",
                                  (json_int_t)(now % G_USEC_PER_SEC)));
    json_object_set_new(ev, "event", json_string(name));
    if (data) {
        json_object_set_new(ev, "data", data);
    }
    if (event_sink) {
        event_sink(ev, event_sink_opaque);
    }
    monitor_foreach_negotiated(send_one, ev);
    json_decref(ev);
}

void monitor_events_init(void)
{
    qapi_event_set_emitter(monitor_emit_event);
}
