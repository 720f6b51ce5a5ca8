"""Generate qapi-types.h / qapi-types.c: C declarations for every schema
type and the enum lookup tables and qapi_free_Foo() functions.

Layout rules (other modules depend on them):
- struct: members in schema order, base members first and inline; an
  optional member 'x' is preceded by 'bool has_x';
- union: the base members, then 'union { Branch name; ... } u' with each
  branch struct embedded by value (so branch types are emitted first);
- alternate: 'QType type' then 'union { ... } u'; object and list
  branches are pointers, scalars by value;
- list: 'FooList { FooList *next; Foo value; }' (pointer for objects);
- enum: PREFIX_VALUE constants, PREFIX__MAX, Foo_lookup, Foo_str().
"""

from common import banner, c_enum_const, c_name, camel_to_upper, gen_if
from schema import (AlternateType, ArrayType, BuiltinType, EnumType,
                    ObjectType)


def enum_prefix(t):
    return t.prefix if t.prefix is not None else camel_to_upper(t.name)


def gen_enum_decl(t):
    out = 'typedef enum %s {\n' % t.c_name()
    for v in t.values:
        out += gen_if(v.ifcond, '    %s,\n' % c_enum_const(t.name, v.name,
                                                         t.prefix))
    out += '    %s__MAX,\n} %s;\n\n' % (enum_prefix(t), t.c_name())
    out += 'extern const QEnumLookup %s_lookup;\n' % t.c_name()
    out += '#define %s_str(val) qapi_enum_lookup(&%s_lookup, (val))\n' % (
        t.c_name(), t.c_name())
    return gen_if(t.ifcond, out) + '\n'


def gen_enum_lookup(t):
    out = 'const QEnumLookup %s_lookup = {\n' % t.c_name()
    out += '    .array = (const char *const[]) {\n'
    for v in t.values:
        out += gen_if(v.ifcond, '        [%s] = "%s",\n'
                      % (c_enum_const(t.name, v.name, t.prefix), v.name))
    out += '    },\n    .size = %s__MAX,\n};\n' % enum_prefix(t)
    return gen_if(t.ifcond, out) + '\n'


def member_decl(m, pad='    '):
    out = ''
    if m.optional:
        out += '%sbool has_%s;\n' % (pad, m.c_name())
    out += '%s%s%s;\n' % (pad, _decl_type(m.type), m.c_name())
    return gen_if(m.ifcond, out)


def _decl_type(t):
    ct = t.c_type()
    return ct if ct.endswith('*') else ct + ' '


def gen_struct(t):
    out = 'struct %s {\n' % t.c_name()
    if t.base:
        named = not t.base.is_implicit()
        if named:
            out += '    /* Members inherited from %s: */\n' % t.base.c_name()
        for m in t.base.members:
            out += member_decl(m)
        if named and t.local_members:
            out += '    /* Own members: */\n'
    for m in t.local_members:
        out += member_decl(m)
    if t.variants:
        out += '    union { /* tag is member \'%s\' */\n' % t.tag_member.name
        for v in t.variants:
            out += gen_if(v.ifcond, '        %s %s;\n'
                          % (v.type.c_name(), c_name(v.name)))
        out += '    } u;\n'
    if not t.members and not t.variants:
        out += '    char qapi_dummy_for_empty_struct;\n'
    out += '};\n'
    if t.base and not t.is_implicit():
        out += ('\nstatic inline %s *qapi_%s_base(const %s *obj)\n{\n'
                '    return (%s *)obj;\n}\n'
                % (t.base.c_name(), t.c_name(), t.c_name(), t.base.c_name()))
    return gen_if(t.ifcond, out) + '\n'


def gen_alternate(t):
    out = 'struct %s {\n    QType type;\n    union {\n' % t.c_name()
    for v in t.variants:
        out += gen_if(v.ifcond, '        %s%s;\n'
                      % (_decl_type(v.type), c_name(v.name)))
    out += '    } u;\n};\n'
    return gen_if(t.ifcond, out) + '\n'


def gen_list(t):
    out = 'struct %s {\n    %s *next;\n    %svalue;\n};\n' % (
        t.c_name(), t.c_name(), _decl_type(t.element))
    return gen_if(t.element.ifcond, out) + '\n'


def gen_free_decl(t):
    out = 'void qapi_free_%s(%s *obj);\n' % (t.c_name(), t.c_name())
    out += 'G_DEFINE_AUTOPTR_CLEANUP_FUNC(%s, qapi_free_%s)\n' % (
        t.c_name(), t.c_name())
    return gen_if(_ifcond(t), out)


def gen_free_def(t):
    out = ('void qapi_free_%s(%s *obj)\n{\n    Visitor *v;\n\n'
           '    if (!obj) {\n        return;\n    }\n'
           '    v = qapi_dealloc_visitor_new();\n'
           '    visit_type_%s(v, NULL, &obj, NULL);\n'
           '    visit_free(v);\n}\n' % (t.c_name(), t.c_name(), t.c_name()))
    return gen_if(_ifcond(t), out) + '\n'


def _ifcond(t):
    return t.element.ifcond if isinstance(t, ArrayType) else t.ifcond


def _embed_order(objs):
    """Objects ordered so that branch types embedded by value in a union
    come before the union."""
    done, out = set(), []

    def visit(t):
        if t.name in done:
            return
        done.add(t.name)
        for v in t.variants:
            visit(v.type)
        out.append(t)
    for t in objs:
        visit(t)
    return out


def freeable(schema):
    """Types that get qapi_free_Foo() and visit_type_Foo()."""
    out = []
    for t in schema.types.values():
        if isinstance(t, (ObjectType, AlternateType)) and \
                not t.is_implicit():
            out.append(t)
        elif isinstance(t, ArrayType):
            out.append(t)
    return out


def generate(schema, prefix=''):
    h = banner('C types') + '\n#ifndef %sQAPI_TYPES_H\n#define %sQAPI_TYPES_H\n\n' \
        % (prefix.upper(), prefix.upper())
    h += '#include "qapi/qapi-util.h"\n\n'
    c = banner('C types') + '\n#include "qapi/%sqapi-types.h"\n' % prefix
    c += '#include "qapi/%sqapi-visit.h"\n' % prefix
    c += '#include "qapi/dealloc-visitor.h"\n\n'

    types = list(schema.types.values())
    enums = [t for t in types if isinstance(t, EnumType)]
    objs = [t for t in types if isinstance(t, ObjectType)
            and t.name != 'q_empty']
    alts = [t for t in types if isinstance(t, AlternateType)]
    lists = [t for t in types if isinstance(t, ArrayType)]
    # every builtin and named type gets a list type, used or not
    for t in types:
        if isinstance(t, (BuiltinType, EnumType, AlternateType)) or \
                (isinstance(t, ObjectType) and not t.is_implicit()):
            name = t.name + 'List'
            if name not in schema.types:
                lt = ArrayType(t.name, t.info)
                lt.element = t
                schema.types[name] = lt
                lists.append(lt)

    h += '/* Enumerations */\n\n'
    for t in enums:
        h += gen_enum_decl(t)
        c += gen_enum_lookup(t)
    h += '/* Forward declarations */\n\n'
    for t in objs + alts:
        h += gen_if(t.ifcond, 'typedef struct %s %s;\n'
                    % (t.c_name(), t.c_name()))
    for t in lists:
        h += gen_if(t.element.ifcond, 'typedef struct %s %s;\n'
                    % (t.c_name(), t.c_name()))
    h += '\n/* Lists */\n\n'
    for t in lists:
        h += gen_list(t)
    h += '/* Structs and unions */\n\n'
    for t in _embed_order(objs):
        h += gen_struct(t)
    h += '/* Alternates */\n\n'
    for t in alts:
        h += gen_alternate(t)
    h += '/* Freeing */\n\n'
    for t in freeable(schema):
        h += gen_free_decl(t)
        c += gen_free_def(t)
    h += '\n#endif\n'
    return h, c
