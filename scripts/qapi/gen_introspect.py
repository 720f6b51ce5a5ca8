"""Generate qapi-introspect.h / qapi-introspect.c: the data query-qmp-schema
returns, in QEMU 7.2's SchemaInfo format.

As QEMU does, only commands, events and the types reachable from them are
listed; commands and events come first in schema order, then types in the
order they were first referenced.  Non-builtin type names are masked as
numbers "0", "1", ... assigned on first reference (the empty object is
typically "0"); arrays are named "[ELEMENT]" and listed just before their
element; every integer type appears as "int".  Member lists keep schema
order (the monitor re-orders keys on output).

The C side builds the jansson tree at run time so that 'if' conditions
become plain #if blocks around the pieces they guard.
"""

import json

from common import IfCond, banner, gen_if
from schema import (AlternateType, ArrayType, BuiltinType, EnumType,
                    ObjectType)


class Cond:
    """A value that exists only when ifcond holds."""

    def __init__(self, value, ifcond):
        self.value = value
        self.ifcond = ifcond


def _feats(ent):
    if not ent.features:
        return None
    return [Cond(f.name, f.ifcond) if f.ifcond else f.name
            for f in ent.features]


class Introspector:
    def __init__(self, schema, unmask=False):
        self.schema = schema
        self.unmask = unmask
        self.names = {}
        self.used = []
        self.entries = []

    def _name(self, t):
        if self.unmask:
            return t.name
        if t.name not in self.names:
            self.names[t.name] = str(len(self.names))
        return self.names[t.name]

    def use(self, t):
        """Mark t used and return the name introspection shows for it."""
        if isinstance(t, BuiltinType) and t.json_type() == 'int':
            t = self.schema.types['int']
        if isinstance(t, ArrayType) and isinstance(t.element, BuiltinType) \
                and t.element.json_type() == 'int':
            t = self.schema.types.get('intList') or t
        if t not in self.used:
            self.used.append(t)
        if isinstance(t, BuiltinType):
            return t.name
        if isinstance(t, ArrayType):
            return '[' + self.use(t.element) + ']'
        return self._name(t)

    def build(self):
        empty = self.schema.empty
        for e in self.schema.entities:
            if e.meta == 'command':
                d = {'name': e.name, 'meta-type': 'command',
                     'arg-type': self.use(e.arg_type or empty),
                     'ret-type': self.use(e.ret_type or empty)}
                if e.allow_oob:
                    d['allow-oob'] = True
            elif e.meta == 'event':
                d = {'name': e.name, 'meta-type': 'event',
                     'arg-type': self.use(e.arg_type or empty)}
            else:
                continue
            self._add(d, e)
        i = 0
        while i < len(self.used):
            self._type_entry(self.used[i])
            i += 1
        return self.entries

    def _add(self, d, ent):
        f = _feats(ent)
        if f:
            d['features'] = f
        self.entries.append(Cond(d, ent.ifcond) if ent.ifcond else d)

    def _member(self, m):
        d = {'name': m.name, 'type': self.use(m.type)}
        if m.optional:
            d['default'] = None
        f = _feats(m)
        if f:
            d['features'] = f
        return Cond(d, m.ifcond) if m.ifcond else d

    def _type_entry(self, t):
        name = self.use(t)
        if isinstance(t, BuiltinType):
            d = {'name': name, 'meta-type': 'builtin',
                 'json-type': t.json_type()}
        elif isinstance(t, ArrayType):
            d = {'name': name, 'meta-type': 'array',
                 'element-type': self.use(t.element)}
        elif isinstance(t, EnumType):
            vals = [Cond(v.name, v.ifcond) if v.ifcond else v.name
                    for v in t.values]
            mems = []
            for v in t.values:
                md = {'name': v.name}
                f = _feats(v)
                if f:
                    md['features'] = f
                mems.append(Cond(md, v.ifcond) if v.ifcond else md)
            d = {'name': name, 'meta-type': 'enum', 'members': mems,
                 'values': vals}
        elif isinstance(t, ObjectType):
            d = {'name': name, 'meta-type': 'object',
                 'members': [self._member(m) for m in t.members]}
            if t.variants:
                d['tag'] = t.tag_member.name
                vs = []
                for v in t.variants:
                    vd = {'case': v.name, 'type': self.use(v.type)}
                    vs.append(Cond(vd, v.ifcond) if v.ifcond else vd)
                # values without a branch get an empty one, listed after
                # the explicit branches in enum order (as QEMU 7.2 does)
                covered = {v.name for v in t.variants}
                for ev in t.tag_member.type.values:
                    if ev.name not in covered:
                        vd = {'case': ev.name,
                              'type': self.use(self.schema.empty)}
                        vs.append(Cond(vd, ev.ifcond) if ev.ifcond else vd)
                d['variants'] = vs
        elif isinstance(t, AlternateType):
            ms = []
            for v in t.variants:
                vd = {'type': self.use(v.type)}
                ms.append(Cond(vd, v.ifcond) if v.ifcond else vd)
            d = {'name': name, 'meta-type': 'alternate', 'members': ms}
        else:
            raise AssertionError(t)
        if isinstance(t, ArrayType):
            self.entries.append(Cond(d, t.element.ifcond)
                                if t.element.ifcond else d)
        else:
            self._add(d, t)


def to_plain(v):
    """The tree with every condition taken as true (for golden tests)."""
    if isinstance(v, Cond):
        return to_plain(v.value)
    if isinstance(v, dict):
        return {k: to_plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_plain(x) for x in v]
    return v


class CEmitter:
    def __init__(self):
        self.n = 0

    def var(self):
        self.n += 1
        return 't%d' % self.n

    def scalar(self, v):
        if v is None:
            return 'json_null()'
        if v is True:
            return 'json_true()'
        if v is False:
            return 'json_false()'
        return 'json_string(%s)' % json.dumps(v)

    def emit(self, v, attach, depth):
        """C statements creating v and passing it to attach(expr)."""
        pad = '    ' * depth
        cond = None
        if isinstance(v, Cond):
            cond, v = v.ifcond, v.value
        if isinstance(v, (dict, list)):
            var = self.var()
            out = '%s{\n%s    json_t *%s = json_%s();\n' % (
                pad, pad, var, 'object' if isinstance(v, dict) else 'array')
            if isinstance(v, dict):
                for k, x in v.items():
                    out += self.emit(x, lambda e, k=k, var=var:
                                     'json_object_set_new(%s, "%s", %s);'
                                     % (var, k, e), depth + 1)
            else:
                for x in v:
                    out += self.emit(x, lambda e, var=var:
                                     'json_array_append_new(%s, %s);'
                                     % (var, e), depth + 1)
            out += '%s    %s\n%s}\n' % (pad, attach(var), pad)
        else:
            out = '%s%s\n' % (pad, attach(self.scalar(v)))
        return gen_if(cond, out) if cond else out


def generate(schema, prefix='', unmask=False):
    entries = Introspector(schema, unmask).build()
    h = banner('introspection') + \
        '\n#ifndef %sQAPI_INTROSPECT_H\n#define %sQAPI_INTROSPECT_H\n\n' \
        % (prefix.upper(), prefix.upper())
    h += ('#include <jansson.h>\n\n/* The query-qmp-schema reply: a new '
          'array of SchemaInfo objects. */\njson_t *%sqmp_schema_introspect'
          '(void);\n\n#endif\n' % prefix)
    c = banner('introspection') + '\n#include "util/common.h"\n'
    c += '#include "qapi/%sqapi-introspect.h"\n\n' % prefix
    em = CEmitter()
    c += 'json_t *%sqmp_schema_introspect(void)\n{\n' % prefix
    c += '    json_t *schema = json_array();\n\n'
    for e in entries:
        c += em.emit(e, lambda x: 'json_array_append_new(schema, %s);' % x, 1)
    c += '    return schema;\n}\n'
    return h, c, [to_plain(e) for e in entries]
