"""Checker and model of a parsed QAPI schema.

check_expr() validates each top-level expression (keys, names, shapes)
and reports the first problem as "file.json:LINE: message".  Schema then
builds typed entities (builtin, enum, object, alternate, array, command,
event), creates the implicit types (command arguments, event data, inline
union bases), resolves every type reference and checks what needs the whole
schema (unknown types, union discriminators, alternate ambiguity, clashing
member names).

Invariants after construction:
1. every type reference resolves to an entity in self.types;
2. every object's member list includes its base's members, base first;
3. a union's tag is a non-optional enum member of its base, and each
   variant names a value of that enum and an object type;
4. alternate branches differ in JSON type.
"""

import re

from common import IfCond, c_name
from parse import QAPIError

META = ('enum', 'struct', 'union', 'alternate', 'command', 'event')

ALLOWED = {
    'enum': {'enum', 'data', 'prefix', 'if', 'features'},
    'struct': {'struct', 'data', 'base', 'if', 'features'},
    'union': {'union', 'base', 'discriminator', 'data', 'if', 'features'},
    'alternate': {'alternate', 'data', 'if', 'features'},
    'command': {'command', 'data', 'returns', 'boxed', 'if', 'features',
                'gen', 'success-response', 'allow-oob', 'allow-preconfig',
                'coroutine', 'allowed-before-negotiation'},
    'event': {'event', 'data', 'boxed', 'if', 'features'},
}

# builtin name -> (C type, JSON type for introspection/errors)
BUILTINS = {
    'str': ('char *', 'string'),
    'number': ('double', 'number'),
    'int': ('int64_t', 'int'),
    'int8': ('int8_t', 'int'),
    'int16': ('int16_t', 'int'),
    'int32': ('int32_t', 'int'),
    'int64': ('int64_t', 'int'),
    'uint8': ('uint8_t', 'int'),
    'uint16': ('uint16_t', 'int'),
    'uint32': ('uint32_t', 'int'),
    'uint64': ('uint64_t', 'int'),
    'size': ('uint64_t', 'int'),
    'bool': ('bool', 'boolean'),
    'any': ('json_t *', 'value'),
    'null': ('json_t *', 'null'),
}

# JSON kinds an alternate branch is selected by
QTYPE_OF_JSON = {'string': 'QTYPE_QSTRING', 'int': 'QTYPE_QNUM',
                 'number': 'QTYPE_QNUM', 'boolean': 'QTYPE_QBOOL',
                 'null': 'QTYPE_QNULL', 'object': 'QTYPE_QDICT',
                 'array': 'QTYPE_QLIST'}

SPECIAL_FEATURES = ('deprecated', 'unstable')

_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


# --- expression checks ---------------------------------------------------

def _err(info, msg):
    raise QAPIError(info, msg)


def _check_name(info, source, name, allow_optional=False, lower=False,
                upper=False, camel=False):
    if not isinstance(name, str):
        _err(info, "%s requires a string name" % source)
    n = name[1:] if allow_optional and name.startswith('*') else name
    if not _NAME_RE.match(n):
        _err(info, "%s has an invalid name '%s'" % (source, name))
    if n.startswith('q_'):
        _err(info, "%s uses reserved name prefix 'q_'" % source)
    if lower and n != n.lower():
        _err(info, "name of %s must use lowercase" % source)
    if upper and n != n.upper():
        _err(info, "name of %s must use uppercase" % source)
    if camel and not n[0].isupper():
        _err(info, "name of %s must use CamelCase" % source)
    return n


def _check_if(info, cond, source):
    def check(c):
        if isinstance(c, str):
            if not re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', c):
                _err(info, "'if' condition '%s' of %s is not a valid "
                     "identifier" % (c, source))
            return
        if not isinstance(c, dict) or len(c) != 1:
            _err(info, "'if' condition of %s must be a string or an object "
                 "with one of 'all', 'any', 'not'" % source)
        op, arg = next(iter(c.items()))
        if op == 'not':
            check(arg)
        elif op in ('all', 'any'):
            if not isinstance(arg, list) or not arg:
                _err(info, "'if' condition '%s' of %s must be a non-empty "
                     "array" % (op, source))
            for a in arg:
                check(a)
        else:
            _err(info, "'if' condition of %s has unknown operator '%s'"
                 % (source, op))
    if cond is not None:
        check(cond)


def _check_features(info, feats, source):
    if feats is None:
        return
    if not isinstance(feats, list):
        _err(info, "'features' of %s must be an array" % source)
    for f in feats:
        if isinstance(f, dict):
            if set(f) - {'name', 'if'} or 'name' not in f:
                _err(info, "feature of %s must have 'name' and optional "
                     "'if'" % source)
            _check_if(info, f.get('if'), source)
            f = f['name']
        _check_name(info, "feature of %s" % source, f, lower=True)


def _check_type_ref(info, ref, source, allow_array=True, allow_dict=False):
    if isinstance(ref, str):
        return
    if isinstance(ref, list) and allow_array:
        if len(ref) != 1 or not isinstance(ref[0], str):
            _err(info, "%s: array type must contain a single type name"
                 % source)
        return
    if isinstance(ref, dict) and allow_dict:
        _check_members(info, ref, source)
        return
    if allow_dict:
        _err(info, "%s should be an object or type name" % source)
    _err(info, "%s should be a type name" % source)


def _check_members(info, data, source):
    for key, val in data.items():
        msrc = "member '%s' of %s" % (key.lstrip('*'), source)
        _check_name(info, msrc, key, allow_optional=True)
        if c_name(key.lstrip('*')).startswith('has_'):
            _err(info, "%s: name must not start with 'has_'" % msrc)
        if isinstance(val, dict):
            if 'type' not in val:
                _err(info, "%s misses key 'type'" % msrc)
            extra = set(val) - {'type', 'if', 'features'}
            if extra:
                _err(info, "%s has unknown key '%s'" % (msrc, sorted(extra)[0]))
            _check_if(info, val.get('if'), msrc)
            _check_features(info, val.get('features'), msrc)
            val = val['type']
        _check_type_ref(info, val, "%s" % msrc)


def check_expr(expr, info):
    metas = [m for m in META if m in expr]
    if len(metas) != 1:
        if not metas:
            _err(info, "expression is missing metatype (one of %s)"
                 % ', '.join(META))
        _err(info, "expression has conflicting metatypes '%s' and '%s'"
             % (metas[0], metas[1]))
    meta = metas[0]
    name = expr[meta]
    source = "%s '%s'" % (meta, name)
    extra = [k for k in expr if k not in ALLOWED[meta]]
    if extra:
        _err(info, "%s has unknown key '%s'" % (source, extra[0]))
    if meta == 'command':
        _check_name(info, source, name, lower=True)
    elif meta == 'event':
        _check_name(info, source, name, upper=True)
    else:
        _check_name(info, source, name, camel=True)
        if name.endswith('List'):
            _err(info, "%s should not end in 'List'" % source)
        if name in BUILTINS:
            _err(info, "%s clashes with a built-in type" % source)
    _check_if(info, expr.get('if'), source)
    _check_features(info, expr.get('features'), source)
    for key in ('boxed', 'gen', 'success-response', 'allow-oob',
                'allow-preconfig', 'coroutine', 'allowed-before-negotiation'):
        if key in expr and not isinstance(expr[key], bool):
            _err(info, "'%s' of %s must be a boolean" % (key, source))

    data = expr.get('data')
    if meta == 'enum':
        if 'prefix' in expr and not isinstance(expr['prefix'], str):
            _err(info, "'prefix' of %s must be a string" % source)
        if not isinstance(data, list):
            _err(info, "'data' of %s must be an array" % source)
        seen = set()
        for v in data:
            vname = v
            if isinstance(v, dict):
                if 'name' not in v or set(v) - {'name', 'if', 'features'}:
                    _err(info, "value of %s must have 'name' and optional "
                         "'if', 'features'" % source)
                _check_if(info, v.get('if'), source)
                _check_features(info, v.get('features'), source)
                vname = v['name']
            if not isinstance(vname, str):
                _err(info, "value of %s must be a string" % source)
            _check_name(info, "value '%s' of %s" % (vname, source), vname)
            if c_name(vname).upper() in seen:
                _err(info, "value '%s' of %s clashes with another value"
                     % (vname, source))
            seen.add(c_name(vname).upper())
    elif meta == 'struct':
        if not isinstance(data, dict):
            _err(info, "'data' of %s must be an object" % source)
        _check_members(info, data, source)
        if 'base' in expr:
            _check_type_ref(info, expr['base'], "'base' of %s" % source,
                            allow_array=False)
    elif meta == 'union':
        if 'base' not in expr:
            _err(info, "%s misses key 'base'" % source)
        if 'discriminator' not in expr:
            _err(info, "%s misses key 'discriminator'" % source)
        if not isinstance(expr['discriminator'], str):
            _err(info, "'discriminator' of %s must be a string" % source)
        _check_type_ref(info, expr['base'], "'base' of %s" % source,
                        allow_array=False, allow_dict=True)
        if not isinstance(data, dict):
            _err(info, "'data' of %s must be an object" % source)
        for br, val in data.items():
            bsrc = "branch '%s' of %s" % (br, source)
            _check_name(info, bsrc, br)
            if isinstance(val, dict):
                if 'type' not in val or set(val) - {'type', 'if'}:
                    _err(info, "%s must have 'type' and optional 'if'"
                         % bsrc)
                _check_if(info, val.get('if'), bsrc)
                val = val['type']
            _check_type_ref(info, val, bsrc, allow_array=False)
    elif meta == 'alternate':
        if not isinstance(data, dict) or not data:
            _err(info, "'data' of %s must be a non-empty object" % source)
        for br, val in data.items():
            bsrc = "branch '%s' of %s" % (br, source)
            _check_name(info, bsrc, br)
            if isinstance(val, dict):
                if 'type' not in val or set(val) - {'type', 'if'}:
                    _err(info, "%s must have 'type' and optional 'if'"
                         % bsrc)
                _check_if(info, val.get('if'), bsrc)
                val = val['type']
            _check_type_ref(info, val, bsrc)
    elif meta in ('command', 'event'):
        if data is not None:
            if expr.get('boxed'):
                if not isinstance(data, str):
                    _err(info, "'data' of %s with 'boxed': true must be a "
                         "type name" % source)
            elif not isinstance(data, (dict, str)):
                _err(info, "'data' for %s should be an object or type name"
                     % source)
            elif isinstance(data, dict):
                _check_members(info, data, source)
        elif expr.get('boxed'):
            _err(info, "%s requires 'data' with 'boxed': true" % source)
        if 'returns' in expr:
            _check_type_ref(info, expr['returns'], "'returns' for %s"
                            % source)
        if expr.get('success-response') is False and 'returns' in expr:
            _err(info, "%s with 'success-response': false must not "
                 "return anything" % source)
    return meta, name


# --- model ---------------------------------------------------------------

class Entity:
    meta = None

    def __init__(self, name, info, ifcond=None, features=None, doc=None):
        self.name = name
        self.info = info
        self.ifcond = IfCond(ifcond)
        self.features = [Feature(f) for f in (features or [])]
        self.doc = doc
        self.module = None

    def feature_names(self):
        return [f.name for f in self.features]

    def is_implicit(self):
        return self.name.startswith('q_')

    def special_features(self):
        return [f for f in self.feature_names() if f in SPECIAL_FEATURES]


class Feature:
    def __init__(self, f):
        if isinstance(f, dict):
            self.name, self.ifcond = f['name'], IfCond(f.get('if'))
        else:
            self.name, self.ifcond = f, IfCond()


class Type(Entity):
    def c_name(self):
        return c_name(self.name)

    def c_type(self):
        """C type of a variable holding a value of this type."""
        return c_name(self.name) + ' *'

    def c_param_type(self):
        return self.c_type()

    def json_type(self):
        raise NotImplementedError

    def is_scalar(self):
        return False


class BuiltinType(Type):
    meta = 'builtin'

    def __init__(self, name):
        super().__init__(name, None)
        self._ctype, self._json = BUILTINS[name]

    def c_type(self):
        return self._ctype

    def c_param_type(self):
        return 'const char *' if self.name == 'str' else self._ctype

    def json_type(self):
        return self._json

    def is_scalar(self):
        return True

    def is_pointer(self):
        return self._ctype.endswith('*')


class EnumValue:
    def __init__(self, name, ifcond=None, features=None):
        self.name = name
        self.ifcond = IfCond(ifcond)
        self.features = [Feature(f) for f in (features or [])]


class EnumType(Type):
    meta = 'enum'

    def __init__(self, name, info, values, prefix=None, **kw):
        super().__init__(name, info, **kw)
        self.values = values
        self.prefix = prefix

    def c_type(self):
        return c_name(self.name)

    def json_type(self):
        return 'string'

    def is_scalar(self):
        return True

    def value_names(self):
        return [v.name for v in self.values]


class ArrayType(Type):
    meta = 'array'

    def __init__(self, elem_name, info):
        super().__init__(elem_name + 'List', info)
        self.elem_name = elem_name
        self.element = None

    def c_name(self):
        return c_name(self.elem_name, False) + 'List'

    def c_type(self):
        return self.c_name() + ' *'

    def json_type(self):
        return 'array'


class Member:
    def __init__(self, name, type_name, optional, info, ifcond=None,
                 features=None):
        self.name = name
        self.type_name = type_name
        self.type = None
        self.optional = optional
        self.info = info
        self.ifcond = IfCond(ifcond)
        self.features = [Feature(f) for f in (features or [])]

    def c_name(self):
        return c_name(self.name)


class Variant:
    def __init__(self, name, type_name, info, ifcond=None):
        self.name = name
        self.type_name = type_name
        self.type = None
        self.info = info
        self.ifcond = IfCond(ifcond)


class ObjectType(Type):
    meta = 'object'

    def __init__(self, name, info, base_name, local_members, tag_name=None,
                 variants=None, **kw):
        super().__init__(name, info, **kw)
        self.base_name = base_name
        self.base = None
        self.local_members = local_members
        self.members = None
        self.tag_name = tag_name
        self.tag_member = None
        self.variants = variants or []
        self.is_union = tag_name is not None

    def json_type(self):
        return 'object'

    def is_empty(self):
        return not self.members and not self.variants


class AlternateType(Type):
    meta = 'alternate'

    def __init__(self, name, info, variants, **kw):
        super().__init__(name, info, **kw)
        self.variants = variants

    def json_type(self):
        return 'value'


class Command(Entity):
    meta = 'command'

    def __init__(self, name, info, arg_name, ret_name, expr, **kw):
        super().__init__(name, info, **kw)
        self.arg_name = arg_name
        self.arg_type = None
        self.ret_name = ret_name
        self.ret_type = None
        self.boxed = expr.get('boxed', False)
        self.gen = expr.get('gen', True)
        self.success_response = expr.get('success-response', True)
        self.allow_oob = expr.get('allow-oob', False)
        self.allow_preconfig = expr.get('allow-preconfig', False)
        self.coroutine = expr.get('coroutine', False)
        self.before_negotiation = expr.get('allowed-before-negotiation',
                                           False)


class Event(Entity):
    meta = 'event'

    def __init__(self, name, info, arg_name, boxed, **kw):
        super().__init__(name, info, **kw)
        self.arg_name = arg_name
        self.arg_type = None
        self.boxed = boxed


class Schema:
    def __init__(self, exprs):
        """exprs: list of (expr, Info, doc) from parse.Parser."""
        self.types = {}
        self.entities = []          # definitions in schema order
        self.docs = []              # (kind, item) in order, for doc output
        self.modules = []
        self.pragma = {}
        for b in BUILTINS:
            self._add_type(BuiltinType(b))
            self._array_of(b, None)
        self.empty = self._add_type(ObjectType('q_empty', None, None, []))
        module = None
        for expr, info, doc in exprs:
            if 'module' in expr:
                module = expr['module']
                self.modules.append(module)
                continue
            if 'doc' in expr:
                self.docs.append(('free', doc))
                continue
            if 'pragma' in expr:
                if len(expr) != 1 or not isinstance(expr['pragma'], dict):
                    _err(info, "invalid 'pragma' directive")
                self.pragma.update(expr['pragma'])
                continue
            meta, name = check_expr(expr, info)
            ent = self._define(meta, name, expr, info, doc)
            ent.module = module
            self.entities.append(ent)
            self.docs.append(('def', ent))
        self._resolve()

    # -- construction --

    def _add_type(self, t):
        if t.name in self.types:
            other = self.types[t.name]
            what = 'built-in type' if other.info is None else \
                "%s '%s' defined at %s" % (other.meta, t.name, other.info)
            _err(t.info, "'%s' is already defined (%s)" % (t.name, what))
        self.types[t.name] = t
        return t

    def _members(self, data, info):
        out = []
        for key, val in data.items():
            opt = key.startswith('*')
            kw = {}
            if isinstance(val, dict):
                kw = {'ifcond': val.get('if'),
                      'features': val.get('features')}
                val = val['type']
            out.append(Member(key.lstrip('*'), self._type_ref(val, info),
                              opt, info, **kw))
        return out

    def _type_ref(self, ref, info):
        if isinstance(ref, list):
            return self._array_of(ref[0], info)
        return ref

    def _array_of(self, elem, info):
        name = elem + 'List'
        if name not in self.types:
            self.types[name] = ArrayType(elem, info)
        return name

    def _implicit(self, name, data, info, ifcond=None):
        t = ObjectType(name, info, None, self._members(data, info),
                       ifcond=ifcond)
        return self._add_type(t).name

    def _define(self, meta, name, expr, info, doc):
        kw = {'ifcond': expr.get('if'), 'features': expr.get('features'),
              'doc': doc}
        data = expr.get('data')
        if meta == 'enum':
            vals = []
            for v in data:
                if isinstance(v, dict):
                    vals.append(EnumValue(v['name'], v.get('if'),
                                          v.get('features')))
                else:
                    vals.append(EnumValue(v))
            return self._add_type(EnumType(name, info, vals,
                                           expr.get('prefix'), **kw))
        if meta == 'struct':
            return self._add_type(ObjectType(name, info, expr.get('base'),
                                             self._members(data, info), **kw))
        if meta == 'union':
            base = expr['base']
            if isinstance(base, dict):
                base = self._implicit('q_obj_%s-base' % name, base, info,
                                      expr.get('if'))
            variants = []
            for br, val in data.items():
                vif = None
                if isinstance(val, dict):
                    vif, val = val.get('if'), val['type']
                variants.append(Variant(br, val, info, vif))
            return self._add_type(ObjectType(name, info, base, [],
                                             expr['discriminator'],
                                             variants, **kw))
        if meta == 'alternate':
            variants = []
            for br, val in data.items():
                vif = None
                if isinstance(val, dict):
                    vif, val = val.get('if'), val['type']
                variants.append(Variant(br, self._type_ref(val, info), info,
                                        vif))
            return self._add_type(AlternateType(name, info, variants, **kw))
        arg = None
        if isinstance(data, dict):
            arg = self._implicit('q_obj_%s-arg' % name, data, info,
                                 expr.get('if')) if data else None
        elif isinstance(data, str):
            arg = data
        if meta == 'command':
            ret = expr.get('returns')
            if ret is not None:
                ret = self._type_ref(ret, info)
            return Command(name, info, arg, ret, expr, **kw)
        return Event(name, info, arg, expr.get('boxed', False), **kw)

    # -- resolution --

    def lookup(self, name, info, source):
        t = self.types.get(name)
        if t is None:
            _err(info, "%s uses unknown type '%s'" % (source, name))
        return t

    def _resolve(self):
        for t in list(self.types.values()):
            if isinstance(t, ArrayType):
                t.element = self.lookup(t.elem_name, t.info,
                                        "array of '%s'" % t.elem_name)
                if isinstance(t.element, ArrayType):
                    _err(t.info, "arrays of arrays are not supported")
        for t in self.types.values():
            if isinstance(t, ObjectType):
                self._resolve_object(t, [])
        for t in self.types.values():
            if isinstance(t, ObjectType):
                self._check_union(t)
            elif isinstance(t, AlternateType):
                self._check_alternate(t)
        for e in self.entities:
            if isinstance(e, (Command, Event)):
                self._check_command_or_event(e)

    def _resolve_object(self, t, stack):
        if t.members is not None:
            return
        if t in stack:
            _err(t.info, "object %s contains itself" % t.name)
        members = []
        if t.base_name:
            src = "'base' of %s '%s'" % ('union' if t.is_union else 'struct',
                                         t.name)
            base = self.lookup(t.base_name, t.info, src)
            if not isinstance(base, ObjectType) or base.is_union:
                _err(t.info, "%s must be a struct type, not '%s'"
                     % (src, base.name))
            self._resolve_object(base, stack + [t])
            t.base = base
            members = list(base.members)
        for m in t.local_members:
            m.type = self.lookup(m.type_name, m.info, "member '%s' of '%s'"
                                 % (m.name, t.name))
        seen = {}
        for m in members + t.local_members:
            cn = m.c_name()
            if cn in seen:
                _err(t.info, "member '%s' of '%s' collides with member '%s'"
                     % (m.name, t.name, seen[cn]))
            seen[cn] = m.name
        t.members = members + t.local_members

    def _check_union(self, t):
        if not t.is_union:
            return
        tag = [m for m in t.members if m.name == t.tag_name]
        if not tag:
            _err(t.info, "discriminator '%s' of union '%s' is not a member "
                 "of its base" % (t.tag_name, t.name))
        tag = tag[0]
        if tag.optional:
            _err(t.info, "discriminator member '%s' of union '%s' must not "
                 "be optional" % (tag.name, t.name))
        if not isinstance(tag.type, EnumType):
            _err(t.info, "discriminator member '%s' of union '%s' must be of "
                 "enum type" % (tag.name, t.name))
        t.tag_member = tag
        values = tag.type.value_names()
        for v in t.variants:
            if v.name not in values:
                _err(t.info, "branch '%s' of union '%s' is not a value of "
                     "%s" % (v.name, t.name, tag.type.name))
            v.type = self.lookup(v.type_name, t.info, "branch '%s' of '%s'"
                                 % (v.name, t.name))
            if not isinstance(v.type, ObjectType) or v.type.is_union:
                _err(t.info, "branch '%s' of union '%s' must be a struct "
                     "type, not '%s'" % (v.name, t.name, v.type.name))
            for m in v.type.members:
                if m.c_name() in (x.c_name() for x in t.members):
                    _err(t.info, "member '%s' of branch '%s' collides with "
                         "a base member of union '%s'"
                         % (m.name, v.name, t.name))

    def _check_alternate(self, t):
        seen = {}
        for v in t.variants:
            v.type = self.lookup(v.type_name, t.info, "branch '%s' of '%s'"
                                 % (v.name, t.name))
            if isinstance(v.type, AlternateType):
                _err(t.info, "branch '%s' of alternate '%s' cannot be an "
                     "alternate" % (v.name, t.name))
            jt = v.type.json_type()
            if jt == 'value':
                _err(t.info, "branch '%s' of alternate '%s' cannot use "
                     "type 'any'" % (v.name, t.name))
            q = QTYPE_OF_JSON[jt]
            if q in seen:
                _err(t.info, "branch '%s' of alternate '%s' can't be "
                     "distinguished from '%s'" % (v.name, t.name, seen[q]))
            seen[q] = v.name

    def _check_command_or_event(self, e):
        src = "%s '%s'" % (e.meta, e.name)
        if e.arg_name:
            e.arg_type = self.lookup(e.arg_name, e.info, src)
            if not isinstance(e.arg_type, ObjectType):
                _err(e.info, "'data' for %s should be an object or type name"
                     % src)
            if e.arg_type.is_union and not e.boxed:
                _err(e.info, "%s: union type '%s' requires 'boxed': true"
                     % (src, e.arg_name))
        if isinstance(e, Command) and e.ret_name:
            e.ret_type = self.lookup(e.ret_name, e.info, src)
            rt = e.ret_type
            inner = rt.element if isinstance(rt, ArrayType) else rt
            if not isinstance(inner, ObjectType) and \
                    self.pragma.get('command-returns-exceptions') is None:
                # QMP replies should be objects; lists of objects are fine
                pass

    # -- queries --

    def types_in_order(self):
        """Named, non-builtin types in definition order (implicit types
        follow their definition's order of creation)."""
        return [t for t in self.types.values()
                if not isinstance(t, (BuiltinType, ArrayType))]

    def commands(self):
        return [e for e in self.entities if isinstance(e, Command)]

    def events(self):
        return [e for e in self.entities if isinstance(e, Event)]
