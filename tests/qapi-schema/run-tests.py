#!/usr/bin/env python3
"""Golden tests of the QAPI generator.

For every NAME.json here (except helpers named *-sub.json):
  - NAME.err exists: the generator must fail and print exactly that;
  - otherwise its --dump output must equal NAME.out, and, if
    NAME.introspect exists, its --introspect-json output must equal it.
Finally the real schema (qapi/qapi-schema.json) must generate C that
matches a few fixed snippets (layout other modules rely on).

Usage: run-tests.py GENERATOR [--update]   (--update rewrites the files)
Prints TAP.
"""

import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(gen, args):
    p = subprocess.run([sys.executable, gen] + args, cwd=HERE,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check_file(path, actual, update):
    if update:
        with open(path, 'w') as f:
            f.write(actual)
        return None
    try:
        with open(path) as f:
            expected = f.read()
    except OSError:
        return 'missing %s' % os.path.basename(path)
    if expected != actual:
        return 'expected %r, got %r' % (expected[:300], actual[:300])
    return None


SNIPPETS = {
    'qapi-types.h': [
        'typedef enum BlockdevDriver {\n    BLOCKDEV_DRIVER_BLKDEBUG,',
        '    BLOCKDEV_DRIVER_NULL_CO,',
        'struct BlockdevOptions {\n    BlockdevDriver driver;\n'
        '    bool has_node_name;\n    char *node_name;',
        '    union { /* tag is member \'driver\' */\n'
        '        BlockdevOptionsBlkdebug blkdebug;',
        'struct BlockdevRef {\n    QType type;\n    union {\n'
        '        BlockdevOptions *definition;\n        char *reference;',
        'struct BlockDirtyBitmapAdd {\n    char *node;\n    char *name;\n'
        '    bool has_granularity;\n    uint32_t granularity;',
        'void qapi_free_BlockdevOptions(BlockdevOptions *obj);',
        '#define JobStatus_str(val) qapi_enum_lookup(&JobStatus_lookup, (val))',
        'BLKDBG_L1_UPDATE,',
    ],
    'qapi-commands.h': [
        'void qmp_block_dirty_bitmap_add(const char *node, const char *name,'
        ' bool has_granularity, uint32_t granularity, bool has_persistent,'
        ' bool persistent, bool has_disabled, bool disabled, Error **errp);',
        'void qmp_blockdev_add(BlockdevOptions *arg, Error **errp);',
        'BlockDirtyBitmapSha256 *qmp_x_debug_block_dirty_bitmap_sha256('
        'const char *node, const char *name, Error **errp);',
        'void qmp_marshal_query_qmp_schema(json_t *args, json_t **ret, '
        'Error **errp);',
    ],
    'qapi-commands.c': [
        '{ "qmp_capabilities", qmp_marshal_qmp_capabilities, '
        'QCO_ALLOW_PRECONFIG | QCO_ALLOWED_BEFORE_NEGOTIATION, 0 },',
        '{ "x-debug-query-block-graph", qmp_marshal_x_debug_query_block_graph,'
        ' QCO_ALLOW_PRECONFIG, QAPI_FEATURE_UNSTABLE },',
        '{ NULL, NULL, 0, 0 },',
    ],
    'qapi-events.h': [
        'void qapi_event_send_job_status_change(const char *id, '
        'JobStatus status);',
        'void qapi_event_send_block_export_deleted(const char *id);',
    ],
}


def main():
    gen = os.path.abspath(sys.argv[1])
    update = '--update' in sys.argv
    tests = sorted(f for f in glob.glob(os.path.join(HERE, '*.json'))
                   if not f.endswith('-sub.json'))
    results = []
    for t in tests:
        name = os.path.basename(t)[:-5]
        base = os.path.join(HERE, name)
        rc, out, err = run(gen, ['--dump', name + '.json'])
        if os.path.exists(base + '.err') or name.startswith('bad-'):
            problem = None if rc == 1 else 'generator exit %d, wanted 1' % rc
            problem = problem or check_file(base + '.err', err, update)
        else:
            problem = None if rc == 0 else 'generator failed: ' + err
            problem = problem or check_file(base + '.out', out, update)
            if not problem and (os.path.exists(base + '.introspect')
                                or update):
                rc, out, err = run(gen, ['--introspect-json',
                                         name + '.json'])
                problem = check_file(base + '.introspect', out, update)
        results.append((name, problem))

    # the real schema: generate into a scratch dir and look for snippets
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        schema = os.path.join(HERE, '..', '..', 'qapi', 'qapi-schema.json')
        rc, out, err = run(gen, ['-o', tmp, schema])
        problem = None if rc == 0 else 'generator failed: ' + err
        for fname, snippets in SNIPPETS.items():
            if problem:
                break
            with open(os.path.join(tmp, fname)) as f:
                text = f.read()
            for s in snippets:
                if s not in text:
                    problem = '%s lacks %r' % (fname, s)
                    break
        results.append(('qapi-schema-snippets', problem))

    print('1..%d' % len(results))
    failed = 0
    for i, (name, problem) in enumerate(results, 1):
        if problem:
            failed += 1
            print('not ok %d %s' % (i, name))
            for line in problem.splitlines():
                print('# ' + line)
        else:
            print('ok %d %s' % (i, name))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
