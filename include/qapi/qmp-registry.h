/*
 * The table of QMP commands the generator produces (qapi-commands.c, in
 * qapi_commands_lib) and the types the monitor needs to dispatch through
 * it.  Each entry carries the command's behaviour flags so the dispatcher,
 * not each handler, enforces them.
 */
#ifndef QAPI_QMP_REGISTRY_H
#define QAPI_QMP_REGISTRY_H

#include "qapi/qapi-util.h"

/* Marshaller: args is the "arguments" object (NULL = none); on success
 * *ret receives the reply value (a new reference). */
typedef void QmpCommandFunc(json_t *args, json_t **ret, Error **errp);

typedef enum QmpCommandOptions {
    QCO_NO_OPTIONS = 0,
    QCO_NO_SUCCESS_RESP = 1 << 0,    /* 'success-response': false */
    QCO_ALLOW_OOB = 1 << 1,          /* 'allow-oob': true */
    QCO_ALLOW_PRECONFIG = 1 << 2,    /* 'allow-preconfig': true */
    QCO_COROUTINE = 1 << 3,          /* 'coroutine': true */
    /* may run before qmp_capabilities ('allowed-before-negotiation') */
    QCO_ALLOWED_BEFORE_NEGOTIATION = 1 << 4,
} QmpCommandOptions;

/* Special features, for policies on deprecated / unstable interfaces. */
typedef enum QapiSpecialFeature {
    QAPI_FEATURE_DEPRECATED = 1 << 0,
    QAPI_FEATURE_UNSTABLE = 1 << 1,
} QapiSpecialFeature;

typedef struct QmpCommand {
    const char *name;
    QmpCommandFunc *fn;
    unsigned options;           /* QmpCommandOptions */
    unsigned special_features;  /* QapiSpecialFeature */
} QmpCommand;

/* Find name in a table terminated by an entry with name NULL. */
const QmpCommand *qmp_command_lookup(const QmpCommand *table,
                                     const char *name);

/*
 * Events: generated qapi_event_send_foo() build the "data" object and hand
 * it to qapi_event_emit(), which passes it to the emitter the monitor
 * installed (it adds the timestamp and sends it).  Without an emitter
 * events are dropped.  The emitter takes ownership of data (may be NULL
 * for events without data).
 */
typedef void QapiEventEmitter(const char *name, json_t *data);
void qapi_event_set_emitter(QapiEventEmitter *fn);
void qapi_event_emit(const char *name, json_t *data);

#endif
