#!/usr/bin/env python3
"""QAPI generator entry point.

    main.py [-o OUTDIR] [-p PREFIX] [--dump] [--introspect-json] SCHEMA

Reads SCHEMA (and its includes), checks it, and writes into OUTDIR:
  PREFIXqapi-types.{h,c}      C types, enum tables, qapi_free_Foo()
  PREFIXqapi-visit.{h,c}      visit_type_Foo()
  PREFIXqapi-commands.{h,c}   marshallers and the dispatch table
  PREFIXqapi-events.{h,c}     qapi_event_send_foo()
  PREFIXqapi-introspect.{h,c} query-qmp-schema data
  PREFIXqmp-reference.md      the reference manual from doc comments
A file is rewritten only when its content changes, so dependent objects
are not rebuilt needlessly.

--dump prints a line-oriented description of the checked schema and
--introspect-json the introspection data (both for the golden tests in
tests/qapi-schema/); nothing is written then.  Errors go to stderr as
"file.json:LINE[:COL]: message" with exit status 1.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen_commands  # noqa: E402
import gen_doc  # noqa: E402
import gen_events  # noqa: E402
import gen_introspect  # noqa: E402
import gen_types  # noqa: E402
import gen_visit  # noqa: E402
from parse import Parser, QAPIError  # noqa: E402
from schema import (AlternateType, ArrayType, BuiltinType,  # noqa: E402
                    EnumType, ObjectType, Schema)


def write_if_changed(path, text):
    try:
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def _cond(ent):
    c = getattr(ent, 'ifcond', None)
    return ' if=%s' % c.docgen() if c else ''


def _feat(ent):
    f = ent.feature_names() if hasattr(ent, 'feature_names') else \
        [x.name for x in ent.features]
    return ' features=%s' % ','.join(f) if f else ''


def dump(schema):
    """Stable textual view of the model for golden tests."""
    out = []
    for t in schema.types.values():
        if isinstance(t, (BuiltinType, ArrayType)) or t.name == 'q_empty':
            continue
        if isinstance(t, EnumType):
            out.append('enum %s%s%s' % (t.name, _cond(t), _feat(t)))
            for v in t.values:
                out.append('    value %s%s%s' % (v.name, _cond(v), _feat(v)))
        elif isinstance(t, ObjectType):
            out.append('object %s%s%s' % (t.name, _cond(t), _feat(t)))
            if t.base:
                out.append('    base %s' % t.base.name)
            for m in t.local_members:
                out.append('    member %s: %s optional=%s%s%s' % (
                    m.name, m.type.name, m.optional, _cond(m), _feat(m)))
            if t.variants:
                out.append('    tag %s' % t.tag_member.name)
                for v in t.variants:
                    out.append('    case %s: %s%s' % (v.name, v.type.name,
                                                     _cond(v)))
        elif isinstance(t, AlternateType):
            out.append('alternate %s%s%s' % (t.name, _cond(t), _feat(t)))
            for v in t.variants:
                out.append('    case %s: %s%s' % (v.name, v.type.name,
                                                 _cond(v)))
    for e in schema.entities:
        if e.meta == 'command':
            out.append('command %s %s -> %s%s%s' % (
                e.name, e.arg_name, e.ret_name, _cond(e), _feat(e)))
            out.append('    gen=%s success_response=%s boxed=%s oob=%s '
                       'preconfig=%s coroutine=%s before_negotiation=%s' % (
                           e.gen, e.success_response, e.boxed, e.allow_oob,
                           e.allow_preconfig, e.coroutine,
                           e.before_negotiation))
        elif e.meta == 'event':
            out.append('event %s %s%s%s' % (e.name, e.arg_name, _cond(e),
                                             _feat(e)))
            out.append('    boxed=%s' % e.boxed)
    return '\n'.join(out) + '\n'


def main(argv):
    ap = argparse.ArgumentParser(description='QAPI code generator')
    ap.add_argument('-o', '--output-dir', default='.')
    ap.add_argument('-p', '--prefix', default='')
    ap.add_argument('--dump', action='store_true')
    ap.add_argument('--introspect-json', action='store_true')
    ap.add_argument('--unmask', action='store_true',
                    help='show real type names in introspection')
    ap.add_argument('schema')
    args = ap.parse_args(argv)
    try:
        display = os.path.basename(args.schema) if (
            args.dump or args.introspect_json) else args.schema
        exprs = Parser(args.schema, display=display).exprs
        schema = Schema(exprs)
        gen_doc.check(schema)
        if args.dump:
            sys.stdout.write(dump(schema))
            return 0
        files = {}
        p = args.prefix
        files[p + 'qapi-types.h'], files[p + 'qapi-types.c'] = \
            gen_types.generate(schema, p)
        files[p + 'qapi-visit.h'], files[p + 'qapi-visit.c'] = \
            gen_visit.generate(schema, p)
        files[p + 'qapi-commands.h'], files[p + 'qapi-commands.c'] = \
            gen_commands.generate(schema, p)
        files[p + 'qapi-events.h'], files[p + 'qapi-events.c'] = \
            gen_events.generate(schema, p)
        ih, ic, plain = gen_introspect.generate(schema, p, args.unmask)
        files[p + 'qapi-introspect.h'], files[p + 'qapi-introspect.c'] = ih, ic
        files[p + 'qmp-reference.md'] = gen_doc.generate(schema)
        if args.introspect_json:
            sys.stdout.write(json.dumps(plain, indent=1) + '\n')
            return 0
    except QAPIError as e:
        sys.stderr.write('%s\n' % e)
        return 1
    os.makedirs(args.output_dir, exist_ok=True)
    for name, text in files.items():
        write_if_changed(os.path.join(args.output_dir, name), text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
