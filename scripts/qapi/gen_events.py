"""Generate qapi-events.h / qapi-events.c: the QAPIEvent enumeration and
one qapi_event_send_foo() per event, which builds the event's "data"
object with the output visitor (members in schema order) and passes it to
qapi_event_emit() (include/qapi/qmp-registry.h).
"""

from common import banner, c_name, camel_to_upper, gen_if
from gen_commands import params


def event_enum_const(ev):
    return 'QAPI_EVENT_' + c_name(ev.name, False).upper()


def fn_name(ev):
    return 'qapi_event_send_%s' % c_name(ev.name.lower(), False)


def gen_send(ev, prefix):
    p = params(ev, with_errp=False)
    out = 'void %s(%s)\n{\n    json_t *data = NULL;\n' % (fn_name(ev), p)
    at = ev.arg_type
    if at:
        out += '    Visitor *v;\n'
        if ev.boxed:
            ref = 'arg'
        else:
            out += '    %s param = {0};\n' % at.c_name()
            ref = '&param'
        out += '\n'
        if not ev.boxed:
            for m in at.members:
                if m.optional:
                    out += gen_if(m.ifcond, '    param.has_%s = has_%s;\n'
                                  % (m.c_name(), m.c_name()))
                cast = '(char *)' if m.type.name == 'str' else ''
                out += gen_if(m.ifcond, '    param.%s = %s%s;\n'
                              % (m.c_name(), cast, m.c_name()))
        out += ('    v = json_output_visitor_new();\n'
                '    visit_start_struct(v, "%s", NULL, 0, &error_abort);\n'
                '    visit_type_%s_members(v, %s, &error_abort);\n'
                '    visit_check_struct(v, &error_abort);\n'
                '    visit_end_struct(v, NULL);\n'
                '    visit_complete(v, &data);\n    visit_free(v);\n'
                % (ev.name, at.c_name(), ref))
    out += '    qapi_event_emit("%s", data);\n}\n' % ev.name
    return gen_if(ev.ifcond, out) + '\n'


def generate(schema, prefix=''):
    events = schema.events()
    h = banner('QMP events') + \
        '\n#ifndef %sQAPI_EVENTS_H\n#define %sQAPI_EVENTS_H\n\n' \
        % (prefix.upper(), prefix.upper())
    h += ('#include "qapi/qmp-registry.h"\n#include "qapi/%sqapi-types.h"\n\n'
          % prefix)
    c = banner('QMP events') + '\n#include "qapi/%sqapi-events.h"\n' % prefix
    c += ('#include "qapi/%sqapi-visit.h"\n'
          '#include "qapi/json-output-visitor.h"\n\n' % prefix)
    enum = camel_to_upper(prefix) + 'QAPI_EVENT' if prefix else 'QAPI_EVENT'
    tname = c_name(prefix) + 'QAPIEvent'
    h += 'typedef enum %s {\n' % tname
    look = 'const QEnumLookup %s_lookup = {\n    .array = (const char *const[]) {\n' % tname
    for ev in events:
        const = event_enum_const(ev).replace('QAPI_EVENT', enum, 1)
        h += gen_if(ev.ifcond, '    %s,\n' % const)
        look += gen_if(ev.ifcond, '        [%s] = "%s",\n' % (const, ev.name))
    h += '    %s__MAX,\n} %s;\n\nextern const QEnumLookup %s_lookup;\n' % (
        enum, tname, tname)
    h += '#define %s_str(val) qapi_enum_lookup(&%s_lookup, (val))\n\n' % (
        tname, tname)
    look += '    },\n    .size = %s__MAX,\n};\n\n' % enum
    c += look
    for ev in events:
        h += gen_if(ev.ifcond, 'void %s(%s);\n'
                    % (fn_name(ev), params(ev, with_errp=False)))
        c += gen_send(ev, prefix)
    h += '\n#endif\n'
    return h, c
