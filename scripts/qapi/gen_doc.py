"""Generate the QMP reference (Markdown) from the schema's doc comments,
and check the comments against the definitions they document.

A definition doc block looks like:

    ##
    # @block-dirty-bitmap-add:
    #
    # Free text (paragraphs).
    #
    # @node: description of a member or argument, continued on
    #        indented lines
    #
    # Features:
    # @unstable: description of a feature
    #
    # Returns: ...
    # Since: 2.4
    # Example:
    #   -> { "execute": ... }
    ##

A free-form block starting with '= Title' or '== Title' opens a section.
Checks: the block names the definition that follows it, and every
documented member exists.
"""

import re

from parse import QAPIError
from schema import ArrayType, BuiltinType

SECTIONS = ('Returns', 'Since', 'Note', 'Notes', 'Example', 'Examples',
            'Errors', 'TODO')


class Doc:
    def __init__(self, block):
        self.info = block.info
        self.symbol = None
        self.body = []
        self.args = {}          # name -> list of lines
        self.features = {}
        self.sections = []      # (title, lines)
        self._parse(block.lines)

    def _parse(self, lines):
        cur = self.body
        mode = 'body'
        first = True
        for line in lines:
            if first:
                first = False
                m = re.match(r'^@([^:]+):\s*(.*)$', line)
                if m:
                    self.symbol = m.group(1)
                    if m.group(2):
                        self.body.append(m.group(2))
                    continue
            m = re.match(r'^@([A-Za-z0-9_.-]+):\s*(.*)$', line)
            if m and mode in ('body', 'args', 'features'):
                table = self.features if mode == 'features' else self.args
                if mode == 'body':
                    mode = 'args'
                    table = self.args
                cur = table.setdefault(m.group(1), [])
                if m.group(2):
                    cur.append(m.group(2))
                continue
            if line.strip() == 'Features:':
                mode = 'features'
                cur = []
                continue
            m = re.match(r'^(%s):\s*(.*)$' % '|'.join(SECTIONS), line)
            if m:
                mode = 'section'
                cur = []
                self.sections.append((m.group(1), cur))
                if m.group(2):
                    cur.append(m.group(2))
                continue
            if mode in ('args', 'features') and not line.strip():
                cur = self.body     # text after the member list
                continue
            cur.append(line)


def _text(lines):
    out = []
    for l in lines:
        out.append(l.strip() if l.startswith(' ') and not
                   l.startswith('  ->') else l)
    return ' '.join(x for x in out if x).strip()


def _para(lines):
    """Body lines to Markdown paragraphs (blank line separated)."""
    text, paras = [], []
    for l in lines + ['']:
        if l.strip():
            text.append(l.strip())
        elif text:
            paras.append(' '.join(text))
            text = []
    return '\n\n'.join(paras)


def _type_text(t):
    if isinstance(t, ArrayType):
        return '[' + _type_text(t.element) + ']'
    if isinstance(t, BuiltinType):
        return '`%s`' % t.name
    if t.is_implicit():
        return 'object'
    return '[`%s`](#%s)' % (t.name, t.name.lower())


def check(schema):
    """Check every definition's doc block; raise QAPIError on mismatch."""
    for kind, item in schema.docs:
        if kind != 'def' or item.doc is None:
            continue
        doc = Doc(item.doc)
        if doc.symbol != item.name:
            raise QAPIError(item.info, "documentation comment is for '%s' "
                            "but the definition is '%s'"
                            % (doc.symbol, item.name))
        names = set(_member_names(item))
        for a in doc.args:
            if a not in names:
                raise QAPIError(item.doc.info, "the following documented "
                                "members are not in the declaration of '%s':"
                                " %s" % (item.name, a))
        fnames = set(item.feature_names()) | _member_feature_names(item)
        for f in doc.features:
            if f not in fnames:
                raise QAPIError(item.doc.info, "documented feature '%s' of "
                                "'%s' does not exist" % (f, item.name))


def _member_feature_names(ent):
    obj = ent.arg_type if ent.meta in ('command', 'event') else ent
    out = set()
    for m in getattr(obj, 'members', None) or []:
        out.update(f.name for f in m.features)
    for v in getattr(obj, 'values', None) or []:
        out.update(f.name for f in v.features)
    return out


def _member_names(ent):
    if ent.meta == 'enum':
        return ent.value_names()
    if ent.meta == 'alternate':
        return [v.name for v in ent.variants]
    if ent.meta == 'object':
        return [m.name for m in ent.local_members] + \
            ([m.name for m in ent.base.members] if ent.base and
             ent.base.is_implicit() else [])
    if ent.meta in ('command', 'event') and ent.arg_type and not ent.boxed:
        return [m.name for m in ent.arg_type.members] \
            if ent.arg_type.is_implicit() else []
    return []


def _members_md(ent, doc):
    rows = []
    if ent.meta == 'enum':
        for v in ent.values:
            rows.append('- `%s`: %s' % (v.name, _text(doc.args.get(v.name, []))
                                        or 'Not documented'))
        return 'Values:', rows
    if ent.meta == 'alternate':
        for v in ent.variants:
            rows.append('- `%s` (%s): %s' % (v.name, _type_text(v.type),
                                              _text(doc.args.get(v.name, []))
                                              or 'Not documented'))
        return 'Members:', rows
    obj = ent.arg_type if ent.meta in ('command', 'event') else ent
    if obj is None:
        return None, []
    if not obj.is_implicit() and obj is not ent:
        return None, ['The members of [`%s`](#%s).' % (obj.name,
                                                      obj.name.lower())]
    for m in obj.members:
        if ent.meta == 'object' and ent.base and not ent.base.is_implicit() \
                and m in ent.base.members:
            continue
        opt = ', optional' if m.optional else ''
        rows.append('- `%s` (%s%s): %s' % (m.name, _type_text(m.type), opt,
                                          _text(doc.args.get(m.name, []))
                                          or 'Not documented'))
    if ent.meta == 'object' and ent.base and not ent.base.is_implicit():
        rows.append('- The members of [`%s`](#%s).'
                    % (ent.base.name, ent.base.name.lower()))
    if ent.meta == 'object' and ent.variants:
        for v in ent.variants:
            rows.append('- When `%s` is `%s`: the members of [`%s`](#%s).'
                        % (ent.tag_member.name, v.name, v.type.name,
                           v.type.name.lower()))
    title = 'Arguments:' if ent.meta == 'command' else \
        'Data:' if ent.meta == 'event' else 'Members:'
    return title, rows


KIND = {'command': 'Command', 'event': 'Event', 'enum': 'Enum',
        'object': 'Object', 'alternate': 'Alternate'}


def generate(schema, title='QMP reference'):
    out = ['# %s' % title, '',
           'Generated from the QAPI schema by scripts/qapi/main.py; '
           'do not edit.', '']
    for kind, item in schema.docs:
        if kind == 'free':
            lines = item.lines
            m = re.match(r'^(=+)\s*(.*)$', lines[0]) if lines else None
            if m:
                out += ['#' * (len(m.group(1)) + 1) + ' ' + m.group(2), '']
                lines = lines[1:]
            p = _para(lines)
            if p:
                out += [p, '']
            continue
        ent = item
        if ent.doc is None:
            continue
        doc = Doc(ent.doc)
        out += ['### %s' % ent.name, '', '*%s*' % KIND[ent.meta], '']
        p = _para(doc.body)
        if p:
            out += [p, '']
        t, rows = _members_md(ent, doc)
        if rows:
            if t:
                out += ['**%s**' % t, '']
            out += rows + ['']
        if ent.features:
            out += ['**Features:**', '']
            for f in ent.features:
                out.append('- `%s`: %s' % (f.name, _text(doc.features.get(
                    f.name, [])) or 'Not documented'))
            out.append('')
        if ent.ifcond:
            out += ['**If:** `%s`' % ent.ifcond.docgen(), '']
        for stitle, lines in doc.sections:
            if stitle.startswith('Example'):
                out += ['**%s:**' % stitle, '', '```']
                out += [l[2:] if l.startswith('  ') else l for l in lines]
                out += ['```', '']
            else:
                out += ['**%s:** %s' % (stitle, _para(lines)), '']
    return '\n'.join(out).rstrip() + '\n'
