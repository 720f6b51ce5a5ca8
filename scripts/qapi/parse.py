"""Parser of the QAPI schema language.

The language is a JSON dialect: strings use single quotes, the only
values are strings, booleans, objects and arrays, '#' starts a comment
that runs to the end of the line, and a comment block opened and closed
by a line '##' is a documentation comment attached to the expression that
follows it.  Top-level expressions are objects; {'include': 'f.json'}
pulls in another file (relative to the including one, each file once) and
{'pragma': {...}} sets generator options.

Errors carry file, line and column: "file.json:12:5: message".
"""

import os


class QAPIError(Exception):
    def __init__(self, info, msg, col=None):
        super().__init__(msg)
        self.info = info
        self.msg = msg
        self.col = col

    def __str__(self):
        if self.info is None:
            return self.msg
        loc = '%s:%d' % (self.info.fname, self.info.line)
        if self.col is not None:
            loc += ':%d' % self.col
        return '%s: %s' % (loc, self.msg)


class Info:
    """Where an expression starts; also the chain of includes leading
    there (for messages) and the doc comment attached to it."""

    def __init__(self, fname, line, parent=None):
        self.fname = fname
        self.line = line
        self.parent = parent

    def __repr__(self):
        return '%s:%d' % (self.fname, self.line)


class DocBlock:
    """Raw documentation comment: its lines (without the leading '# ')."""

    def __init__(self, info, lines):
        self.info = info
        self.lines = lines


class Parser:
    def __init__(self, fname, included=None, parent=None, display=None):
        self.fname = fname
        self.display = display or fname
        self.included = included if included is not None else set()
        self.included.add(os.path.abspath(fname))
        self.parent = parent
        try:
            with open(fname, encoding='utf-8') as f:
                self.src = f.read()
        except OSError as e:
            raise QAPIError(parent, "can't read schema file '%s': %s"
                            % (fname, e.strerror))
        if not self.src.endswith('\n'):
            self.src += '\n'
        self.pos = 0
        self.line = 1
        self.line_pos = 0
        self.tok = None
        self.val = None
        self.tok_line = 1
        self.tok_col = 1
        self.exprs = []     # list of (expr dict, Info, DocBlock or None)
        self.pending_doc = None
        self._parse()

    # --- lexer -----------------------------------------------------------

    def _info(self):
        return Info(self.display, self.tok_line, self.parent)

    def _error(self, msg):
        raise QAPIError(Info(self.display, self.tok_line, self.parent), msg,
                        self.tok_col)

    def _newline(self):
        self.line += 1
        self.line_pos = self.pos

    def _next(self):
        """Advance to the next token: one of '{}[],:', 'S' (string, value
        in self.val), 'B' (boolean), 'D' (a doc block was read), None (EOF)."""
        src = self.src
        while True:
            self.tok_line = self.line
            self.tok_col = self.pos - self.line_pos + 1
            if self.pos >= len(src):
                self.tok = None
                return
            ch = src[self.pos]
            self.pos += 1
            if ch == '\n':
                self._newline()
                continue
            if ch in ' \t\r':
                continue
            if ch == '#':
                end = src.find('\n', self.pos)
                text = src[self.pos - 1:end]
                if text == '##' and self.tok_col == 1:
                    self.pos = end
                    self._read_doc()
                    self.tok = 'D'
                    return
                self.pos = end
                continue
            if ch in '{}[],:':
                self.tok = ch
                return
            if ch == "'":
                out = []
                while True:
                    c = src[self.pos]
                    self.pos += 1
                    if c == '\n':
                        self._error('missing terminating "\'"')
                    if c == '\\':
                        c = src[self.pos]
                        self.pos += 1
                        if c not in "\\'/":
                            self._error("unknown escape \\%s" % c)
                    elif c == "'":
                        break
                    elif not (' ' <= c <= '~'):
                        self._error('funny character in string')
                    out.append(c)
                self.tok = 'S'
                self.val = ''.join(out)
                return
            if src.startswith('true', self.pos - 1):
                self.pos += 3
                self.tok, self.val = 'B', True
                return
            if src.startswith('false', self.pos - 1):
                self.pos += 4
                self.tok, self.val = 'B', False
                return
            self._error("stray '%s'" % ch)

    def _read_doc(self):
        """Read a doc block; self.pos is at the end of its opening '##'."""
        start = Info(self.display, self.line, self.parent)
        lines = []
        src = self.src
        while True:
            if self.pos >= len(src) - 1:
                self._error('documentation comment must end with \'##\'')
            self.pos += 1        # skip '\n'
            self._newline()
            end = src.find('\n', self.pos)
            text = src[self.pos:end].strip()
            self.pos = end
            if text == '##':
                break
            if not text.startswith('#'):
                self.tok_line = self.line
                self.tok_col = 1
                self._error("missing '#' at start of documentation "
                            "comment line")
            if text.startswith('# '):
                text = text[2:]
            elif text == '#':
                text = ''
            else:
                self.tok_line = self.line
                self.tok_col = 2
                self._error("missing space after '#' in documentation "
                            "comment")
            lines.append(text)
        self.val = DocBlock(start, lines)

    # --- grammar ---------------------------------------------------------

    def _value(self):
        if self.tok == '{':
            return self._object()
        if self.tok == '[':
            return self._array()
        if self.tok in ('S', 'B'):
            v = self.val
            self._next()
            return v
        self._error('expected value')

    def _object(self):
        d = {}
        self._next()
        if self.tok == '}':
            self._next()
            return d
        while True:
            if self.tok != 'S':
                self._error('expected string or "}"')
            key = self.val
            self._next()
            if self.tok != ':':
                self._error('expected ":"')
            self._next()
            if key in d:
                self._error("duplicate key '%s'" % key)
            d[key] = self._value()
            if self.tok == '}':
                self._next()
                return d
            if self.tok != ',':
                self._error('expected "," or "}"')
            self._next()

    def _array(self):
        a = []
        self._next()
        if self.tok == ']':
            self._next()
            return a
        while True:
            a.append(self._value())
            if self.tok == ']':
                self._next()
                return a
            if self.tok != ',':
                self._error('expected "," or "]"')
            self._next()

    def _parse(self):
        self._next()
        while self.tok is not None:
            if self.tok == 'D':
                doc = self.val
                self._next()
                if doc.lines and doc.lines[0].startswith('@'):
                    self.pending_doc = doc
                else:
                    # free-form block (section heading or text)
                    self.exprs.append(({'doc': True}, doc.info, doc))
                continue
            info = self._info()
            if self.tok != '{':
                self._error('expected "{"')
            expr = self._object()
            doc, self.pending_doc = self.pending_doc, None
            if 'include' in expr:
                if len(expr) != 1 or not isinstance(expr['include'], str):
                    raise QAPIError(info, "invalid 'include' directive")
                if doc:
                    raise QAPIError(info, 'documentation for include '
                                    'directive makes no sense')
                self._include(expr['include'], info)
            else:
                self.exprs.append((expr, info, doc))
        if self.pending_doc:
            raise QAPIError(self.pending_doc.info, 'documentation comment '
                            'is not followed by a definition')

    def _include(self, name, info):
        path = os.path.join(os.path.dirname(self.fname), name)
        if os.path.abspath(path) in self.included:
            return
        disp = os.path.join(os.path.dirname(self.display), name)
        sub = Parser(path, self.included, info, disp)
        self.exprs.append(({'module': disp}, info, None))
        self.exprs.extend(sub.exprs)
