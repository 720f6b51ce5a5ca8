"""Generate qapi-visit.h / qapi-visit.c: one visit_type_Foo() per type
(and visit_type_Foo_members() per object type) on top of the visitor
primitives in include/qapi/visitor.h.

The same generated function serves the input, output and dealloc
visitors.  On input failure it frees what it allocated and leaves *obj
NULL, so callers never see half-built objects.
"""

from common import banner, c_enum_const, c_name, gen_if
from schema import (QTYPE_OF_JSON, AlternateType, ArrayType, BuiltinType,
                    EnumType, ObjectType)
from gen_types import freeable


def visit_call(t, name_expr, ptr_expr, errp='errp'):
    """C expression visiting a value of type t stored at ptr_expr."""
    if isinstance(t, BuiltinType):
        return 'visit_type_%s(v, %s, %s, %s)' % (t.name, name_expr, ptr_expr,
                                                 errp)
    return 'visit_type_%s(v, %s, %s, %s)' % (t.c_name(), name_expr, ptr_expr,
                                             errp)


def gen_members_decl(t):
    return gen_if(t.ifcond, 'bool visit_type_%s_members(Visitor *v, %s *obj, '
                  'Error **errp);\n' % (t.c_name(), t.c_name()))


def gen_members_def(t):
    out = ('bool visit_type_%s_members(Visitor *v, %s *obj, Error **errp)\n{\n'
           % (t.c_name(), t.c_name()))
    for m in t.members:
        call = visit_call(m.type, '"%s"' % m.name, '&obj->%s' % m.c_name())
        if m.optional:
            body = ('    if (visit_optional(v, "%s", &obj->has_%s)) {\n'
                    '        if (!%s) {\n            return false;\n'
                    '        }\n    }\n' % (m.name, m.c_name(), call))
        else:
            body = '    if (!%s) {\n        return false;\n    }\n' % call
        out += gen_if(m.ifcond, body)
    if t.variants:
        out += '    switch (obj->%s) {\n' % t.tag_member.c_name()
        tag = t.tag_member.type
        for v in t.variants:
            out += gen_if(v.ifcond, '    case %s:\n        return visit_type_%s_'
                          'members(v, &obj->u.%s, errp);\n'
                          % (c_enum_const(tag.name, v.name, tag.prefix),
                             v.type.c_name(), c_name(v.name)))
        out += '    default:\n        break;\n    }\n'
    out += '    return true;\n}\n'
    return gen_if(t.ifcond, out) + '\n'


def gen_decl(t):
    if isinstance(t, EnumType):
        out = ('bool visit_type_%s(Visitor *v, const char *name, %s *obj, '
               'Error **errp);\n' % (t.c_name(), t.c_name()))
        return gen_if(t.ifcond, out)
    ifc = t.element.ifcond if isinstance(t, ArrayType) else t.ifcond
    return gen_if(ifc, 'bool visit_type_%s(Visitor *v, const char *name, '
                  '%s **obj, Error **errp);\n' % (t.c_name(), t.c_name()))


def gen_enum_def(t):
    out = ('bool visit_type_%s(Visitor *v, const char *name, %s *obj, '
           'Error **errp)\n{\n    int value = *obj;\n'
           '    bool ok = visit_type_enum(v, name, &value, &%s_lookup, errp);\n\n'
           '    *obj = value;\n    return ok;\n}\n'
           % (t.c_name(), t.c_name(), t.c_name()))
    return gen_if(t.ifcond, out) + '\n'


_FREE_ON_ERROR = ('    if (!ok && visit_is_input(v)) {\n'
                  '        qapi_free_%s(*obj);\n        *obj = NULL;\n    }\n'
                  '    return ok;\n}\n')


def gen_struct_def(t):
    n = t.c_name()
    out = ('bool visit_type_%s(Visitor *v, const char *name, %s **obj, '
           'Error **errp)\n{\n    bool ok = false;\n\n'
           '    if (!visit_start_struct(v, name, (void **)obj, sizeof(%s), '
           'errp)) {\n        return false;\n    }\n'
           '    if (!*obj) {\n        /* output or dealloc of nothing */\n'
           '        assert(!visit_is_input(v));\n        ok = true;\n'
           '        goto out_obj;\n    }\n'
           '    if (!visit_type_%s_members(v, *obj, errp)) {\n'
           '        goto out_obj;\n    }\n'
           '    ok = visit_check_struct(v, errp);\nout_obj:\n'
           '    visit_end_struct(v, (void **)obj);\n' % (n, n, n, n))
    out += _FREE_ON_ERROR % n
    return gen_if(t.ifcond, out) + '\n'


def gen_list_def(t):
    n = t.c_name()
    out = ('bool visit_type_%s(Visitor *v, const char *name, %s **obj, '
           'Error **errp)\n{\n    bool ok = false;\n    %s *tail;\n'
           '    size_t size = sizeof(**obj);\n\n'
           '    if (!visit_start_list(v, name, (GenericList **)obj, size, '
           'errp)) {\n        return false;\n    }\n'
           '    for (tail = *obj; tail;\n'
           '         tail = (%s *)visit_next_list(v, (GenericList *)tail, '
           'size)) {\n'
           '        if (!%s) {\n            goto out_obj;\n        }\n    }\n'
           '    ok = visit_check_list(v, errp);\nout_obj:\n'
           '    visit_end_list(v, (void **)obj);\n'
           % (n, n, n, n, visit_call(t.element, 'NULL', '&tail->value')))
    out += _FREE_ON_ERROR % n
    return gen_if(t.element.ifcond, out) + '\n'


def gen_alternate_def(t):
    n = t.c_name()
    out = ('bool visit_type_%s(Visitor *v, const char *name, %s **obj, '
           'Error **errp)\n{\n    bool ok = false;\n\n'
           '    if (!visit_start_alternate(v, name, (GenericAlternate **)obj,'
           '\n                               sizeof(**obj), errp)) {\n'
           '        return false;\n    }\n'
           '    if (!*obj) {\n        assert(!visit_is_input(v));\n'
           '        ok = true;\n        goto out_obj;\n    }\n'
           '    switch ((*obj)->type) {\n' % (n, n))
    for v in t.variants:
        qtype = QTYPE_OF_JSON[v.type.json_type()]
        body = '    case %s:\n        ok = %s;\n        break;\n' % (
            qtype, visit_call(v.type, 'name', '&(*obj)->u.%s' % c_name(v.name)))
        out += gen_if(v.ifcond, body)
    out += ('    case QTYPE_NONE:\n        abort();\n'
            '    default:\n        assert(visit_is_input(v));\n'
            '        error_setg(errp, "Invalid parameter type for \'%%s\', '
            'expected: %%s",\n                   name ? name : "null", '
            '"%s");\n'
            '        /* the branch is unset: free only the shell */\n'
            '        g_free(*obj);\n        *obj = NULL;\n    }\nout_obj:\n'
            '    visit_end_alternate(v, (void **)obj);\n' % t.name)
    out += _FREE_ON_ERROR % n
    return gen_if(t.ifcond, out) + '\n'


def generate(schema, prefix=''):
    h = banner('visitors') + '\n#ifndef %sQAPI_VISIT_H\n#define %sQAPI_VISIT_H\n\n' \
        % (prefix.upper(), prefix.upper())
    h += '#include "qapi/visitor.h"\n#include "qapi/%sqapi-types.h"\n\n' % prefix
    c = banner('visitors') + '\n#include "qapi/%sqapi-visit.h"\n\n' % prefix

    objs = [t for t in schema.types.values() if isinstance(t, ObjectType)
            and t.name != 'q_empty']
    for t in objs:
        h += gen_members_decl(t)
        c += gen_members_def(t)
    h += '\n'
    for t in schema.types.values():
        if isinstance(t, EnumType):
            h += gen_decl(t)
            c += gen_enum_def(t)
    for t in freeable(schema):
        h += gen_decl(t)
        if isinstance(t, ObjectType):
            c += gen_struct_def(t)
        elif isinstance(t, ArrayType):
            c += gen_list_def(t)
        else:
            c += gen_alternate_def(t)
    h += '\n#endif\n'
    return h, c
