"""Generate qapi-commands.h / qapi-commands.c: the prototypes of the
hand-written qmp_foo() implementations, one marshaller
qmp_marshal_foo(json_t *args, json_t **ret, Error **errp) per command and
the qmp_commands[] dispatch table with each command's flags.

A marshaller converts the arguments with the input visitor (which produces
QEMU's error texts), calls qmp_foo(), converts the result with the output
visitor and frees everything.  Arguments are passed flattened (optional
ones preceded by has_x) unless the command is 'boxed'.
"""

from common import banner, c_name, gen_if
from gen_visit import visit_call


def params(cmd, with_errp=True):
    out = []
    if cmd.boxed and cmd.arg_type:
        out.append('%s *arg' % cmd.arg_type.c_name())
    elif cmd.arg_type:
        for m in cmd.arg_type.members:
            if m.optional:
                out.append('bool has_%s' % m.c_name())
            ct = m.type.c_param_type()
            out.append('%s%s%s' % (ct, '' if ct.endswith('*') else ' ',
                                   m.c_name()))
    if with_errp:
        out.append('Error **errp')
    return ', '.join(out) if out else 'void'


def call_args(cmd, var='arg'):
    out = []
    if cmd.boxed and cmd.arg_type:
        return '&' + var
    if cmd.arg_type:
        for m in cmd.arg_type.members:
            if m.optional:
                out.append('%s.has_%s' % (var, m.c_name()))
            out.append('%s.%s' % (var, m.c_name()))
    return ', '.join(out)


def ret_ctype(cmd):
    if not cmd.ret_type:
        return 'void'
    return cmd.ret_type.c_type()


def gen_proto(cmd):
    rt = ret_ctype(cmd)
    out = ''
    if cmd.gen:
        out = '%s%sqmp_%s(%s);\n' % (rt, '' if rt.endswith('*') else ' ',
                                     c_name(cmd.name), params(cmd))
    out += ('void qmp_marshal_%s(json_t *args, json_t **ret, Error **errp);\n'
            % c_name(cmd.name))
    return gen_if(cmd.ifcond, out)


def gen_marshal(cmd):
    n = c_name(cmd.name)
    at = cmd.arg_type
    out = ('void qmp_marshal_%s(json_t *args, json_t **ret, Error **errp)\n{\n'
           '    Error *err = NULL;\n    bool ok = false;\n    Visitor *v;\n'
           % n)
    if at:
        out += '    %s arg = {0};\n' % at.c_name()
    if cmd.ret_type:
        out += '    %s%sretval;\n' % (ret_ctype(cmd),
                                      '' if ret_ctype(cmd).endswith('*') else ' ')
    out += ('    json_t *empty = args ? NULL : json_object();\n\n'
            '    v = json_input_visitor_new(args ? args : empty);\n'
            '    if (!visit_start_struct(v, NULL, NULL, 0, errp)) {\n'
            '        goto out;\n    }\n')
    if at:
        out += ('    if (visit_type_%s_members(v, &arg, errp)) {\n'
                '        ok = visit_check_struct(v, errp);\n    }\n'
                % at.c_name())
    else:
        out += '    ok = visit_check_struct(v, errp);\n'
    out += ('    visit_end_struct(v, NULL);\n    if (!ok) {\n'
            '        goto out;\n    }\n\n')
    call = 'qmp_%s(%s%s&err)' % (n, call_args(cmd),
                                 ', ' if call_args(cmd) else '')
    if cmd.ret_type:
        out += '    retval = %s;\n' % call
    else:
        out += '    %s;\n' % call
    out += ('    if (err) {\n        error_propagate(errp, err);\n'
            '        goto out;\n    }\n')
    if cmd.ret_type:
        out += ('    {\n        Visitor *ov = json_output_visitor_new();\n'
                '        Visitor *dv;\n\n'
                '        if (%s) {\n            visit_complete(ov, ret);\n'
                '        }\n        visit_free(ov);\n'
                '        dv = qapi_dealloc_visitor_new();\n'
                '        %s;\n        visit_free(dv);\n    }\n'
                % (visit_call(cmd.ret_type, '"unused"', '&retval', 'errp')
                   .replace('(v,', '(ov,'),
                   visit_call(cmd.ret_type, '"unused"', '&retval', 'NULL')
                   .replace('(v,', '(dv,')))
    else:
        out += '    *ret = json_object();\n'
    out += '\nout:\n    visit_free(v);\n    json_decref(empty);\n'
    if at:
        out += ('    v = qapi_dealloc_visitor_new();\n'
                '    visit_start_struct(v, NULL, NULL, 0, NULL);\n'
                '    visit_type_%s_members(v, &arg, NULL);\n'
                '    visit_end_struct(v, NULL);\n    visit_free(v);\n'
                % at.c_name())
    out += '}\n'
    return gen_if(cmd.ifcond, out) + '\n'


def flags(cmd):
    f = []
    if not cmd.success_response:
        f.append('QCO_NO_SUCCESS_RESP')
    if cmd.allow_oob:
        f.append('QCO_ALLOW_OOB')
    if cmd.allow_preconfig:
        f.append('QCO_ALLOW_PRECONFIG')
    if cmd.coroutine:
        f.append('QCO_COROUTINE')
    if cmd.before_negotiation:
        f.append('QCO_ALLOWED_BEFORE_NEGOTIATION')
    return ' | '.join(f) or 'QCO_NO_OPTIONS'


def special(ent):
    f = ['QAPI_FEATURE_' + s.upper() for s in ent.special_features()]
    return ' | '.join(f) or '0'


def generate(schema, prefix=''):
    h = banner('QMP commands') + \
        '\n#ifndef %sQAPI_COMMANDS_H\n#define %sQAPI_COMMANDS_H\n\n' \
        % (prefix.upper(), prefix.upper())
    h += ('#include "qapi/qmp-registry.h"\n#include "qapi/%sqapi-types.h"\n\n'
          % prefix)
    c = banner('QMP commands') + '\n#include "qapi/%sqapi-commands.h"\n' % prefix
    c += ('#include "qapi/%sqapi-visit.h"\n#include "qapi/json-input-visitor.h"\n'
          '#include "qapi/json-output-visitor.h"\n'
          '#include "qapi/dealloc-visitor.h"\n\n' % prefix)
    table = 'const QmpCommand %sqmp_commands[] = {\n' % prefix
    for cmd in schema.commands():
        h += gen_proto(cmd)
        if cmd.gen:
            c += gen_marshal(cmd)
        table += gen_if(cmd.ifcond, '    { "%s", qmp_marshal_%s, %s, %s },\n'
                        % (cmd.name, c_name(cmd.name), flags(cmd),
                           special(cmd)))
    table += '    { NULL, NULL, 0, 0 },\n};\n'
    h += '\n/* The dispatch table, terminated by a NULL name. */\n'
    h += 'extern const QmpCommand %sqmp_commands[];\n\n#endif\n' % prefix
    c += table
    return h, c
