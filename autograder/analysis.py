"""Source rules, judged on exactly the code that produces a test's records.

A test cell with rules (``forbid_syntax``: no loops; ``forbid_modules``: by hand, no framework)
is graded in two steps. This module does the first: it reads the submission's code cells as
IPython would run them (after IPython's own input transformation, so magics are seen as the
calls they become), finds every name the cell's hidden part uses that the student defined, and
follows those definitions by name, through function bodies, default arguments, decorators,
class bodies and top-level assignments, to the set of top-level statements they rely on: the
*closure*. Every statement of the closure must obey the test's rules, and the analysis fails
closed on anything it cannot follow:

* a name defined more than once, or inside an ``if``, loop, ``try`` or ``with`` block;
* dynamic lookups and code: ``eval``, ``exec``, ``compile``, ``globals()``, ``locals()``,
  ``vars()``, ``__import__``, ``getattr``/``setattr``/``delattr``/``hasattr`` with a computed
  name, ``global`` statements, attributes starting with ``_`` (``__globals__``, ``__code__``,
  ...), frame attributes, ``get_ipython``;
* modules that reach the interpreter's internals (``sys``, ``inspect``, ``gc``, ``importlib``,
  ``ctypes``, ``builtins``, ...), relative and ``*`` imports;
* a cell that is not valid Python even after IPython's transformation.

The second step (:mod:`autograder.assemble`, :mod:`autograder.grade`) runs the hidden part in a
fresh kernel that holds only the set-up cells and the closure's statements, so the records that
decide the test come from exactly the code judged here: nothing else of the student's exists in
that kernel to rebind a name, install a hook or replay a test.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field
from functools import lru_cache

from IPython.core.inputtransformer2 import TransformerManager

SYNTAX_RULES = {
    "for": ((ast.For, ast.AsyncFor), "a for loop"),
    "while": ((ast.While,), "a while loop"),
    "comprehension": ((ast.comprehension,), "a comprehension"),
}
DYNAMIC_NAMES = {"eval", "exec", "compile", "globals", "locals", "vars", "__import__", "breakpoint",
                 "get_ipython", "__builtins__", "__builtin__", "__loader__", "__spec__", "input"}
NAMED_ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "delattr", "hasattr"}
FRAME_ATTRIBUTES = {"f_globals", "f_locals", "f_back", "f_builtins", "f_code", "gi_frame", "cr_frame",
                    "ag_frame", "tb_frame", "tb_next", "func_globals", "modules"}
# Modules that reach the interpreter's state (frames, namespaces, the import system, memory).
INTERNAL_MODULES = {"sys", "builtins", "__builtin__", "__main__", "importlib", "imp", "inspect", "gc",
                    "ctypes", "types", "code", "codeop", "marshal", "pickle", "dill", "cloudpickle",
                    "threading", "_thread", "multiprocessing", "subprocess", "os", "posix", "signal",
                    "traceback", "linecache", "runpy", "pkgutil", "zipimport", "operator",
                    "IPython", "ipykernel", "atexit", "faulthandler", "weakref", "copyreg", "site"}


def _within(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


@dataclass
class Binding:
    """A top-level statement of the submission that binds ``name``."""

    name: str
    cell: int  # index in the submission's code cells
    node: ast.stmt
    kind: str  # "def", "class", "import", "assign", or "other" (a binding the analysis won't follow)
    module: str | None = None  # for imports: the dotted name the binding refers to
    conditional: bool = False  # inside an if / loop / try / with block
    used_by: str | None = None  # the definition that led the closure here (for messages)

    label: str = ""  # which cell, in the student's terms

    @property
    def where(self) -> str:
        return f"line {self.node.lineno} of {self.label or f'code cell {self.cell + 1}'}"

    def source(self) -> str:
        """The statement as code to run. An import binds only this name."""
        if self.kind == "import":
            alias = next(a for a in self.node.names if (a.asname or a.name.split(".")[0]) == self.name)
            if isinstance(self.node, ast.Import):
                return ast.unparse(ast.Import(names=[alias]))
            return ast.unparse(ast.ImportFrom(module=self.node.module, names=[alias], level=0))
        return ast.unparse(self.node)


@dataclass
class Closure:
    """What a test's hidden part relies on: statements in submission order, or why it fails."""

    bindings: list[Binding] = field(default_factory=list)
    problem: str | None = None

    def code(self) -> list[str]:
        return [binding.source() for binding in self.bindings]


def parse_cell(code: str) -> ast.Module | None:
    """A cell as IPython would run it, parsed; None when it is not valid Python.

    Call this module from one thread only: CPython 3.11's AST constructor is not safe across
    threads (python/cpython#106905); :mod:`autograder.grade` keeps all parsing in its main thread."""
    try:
        return ast.parse(TransformerManager().transform_cell(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _symbol_table(code: str) -> symtable.SymbolTable:
    return symtable.symtable(code, "<cell>", "exec")


def _import_bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
    """(bound name, dotted module path or None for what cannot be followed) of an import."""
    bound = []
    for alias in node.names:
        if isinstance(node, ast.Import):
            name = alias.asname or alias.name.split(".")[0]
            bound.append((name, alias.name if alias.asname else alias.name.split(".")[0]))
        elif node.level or alias.name == "*" or not node.module:
            bound.append((alias.asname or alias.name, None))
        else:
            bound.append((alias.asname or alias.name, f"{node.module}.{alias.name}"))
    return bound


def _target_names(target: ast.expr) -> list[str] | None:
    """Names bound by an assignment target, or None when it binds no plain name."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        names = []
        for element in target.elts:
            inner = _target_names(element.value if isinstance(element, ast.Starred) else element)
            if inner is None:
                return None
            names += inner
        return names
    return None  # an attribute or a subscript: a mutation, not a binding of a name


def _bound_in_block(node: ast.AST) -> list[str]:
    """Every module-level name a compound statement can bind, in any of its branches."""
    names = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(current.name)
            continue  # its body is another scope
        if isinstance(current, ast.Lambda):
            continue
        if isinstance(current, (ast.Import, ast.ImportFrom)):
            names += [name for name, _ in _import_bindings(current)]
        elif isinstance(current, ast.Name) and isinstance(current.ctx, (ast.Store, ast.Del)):
            names.append(current.id)
        elif isinstance(current, ast.ExceptHandler) and current.name:
            names.append(current.name)
        elif isinstance(current, (ast.MatchAs, ast.MatchStar)) and current.name:
            names.append(current.name)
        stack.extend(ast.iter_child_nodes(current))
    return names


def top_level_bindings(module: ast.Module, cell: int) -> list[Binding]:
    """The bindings of one parsed cell's module-level statements."""
    bindings = []
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bindings.append(Binding(node.name, cell, node, "def"))
        elif isinstance(node, ast.ClassDef):
            bindings.append(Binding(node.name, cell, node, "class"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, path in _import_bindings(node):
                bindings.append(Binding(name, cell, node, "import" if path else "other", module=path))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [_target_names(t) for t in targets]
            walrus = [n for n in ast.walk(node.value) if isinstance(n, ast.NamedExpr)]
            if all(n is not None for n in names) and not walrus:
                bindings += [Binding(name, cell, node, "assign") for group in names for name in group]
            else:
                bindings += [Binding(name, cell, node, "other") for name in _bound_in_block(node)]
        else:
            conditional = isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try,
                                            ast.With, ast.AsyncWith, ast.Match)) or hasattr(ast, "TryStar") and isinstance(node, ast.TryStar)
            bindings += [Binding(name, cell, node, "other", conditional=conditional)
                         for name in _bound_in_block(node)]
    return bindings


def global_references(code: str) -> set[str]:
    """Module-level names that ``code`` reads, in any of its scopes (functions, lambdas,
    comprehensions and class bodies included; a function's own locals excluded)."""
    table = _symbol_table(code)
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        stack.extend(child.get_children())
        for symbol in child.get_symbols():
            if symbol.is_referenced() and (symbol.is_global() or symbol.is_declared_global()):
                names.add(symbol.get_name())
            elif child.get_type() == "class" and symbol.is_referenced() and not symbol.is_assigned() \
                    and not symbol.is_free():
                names.add(symbol.get_name())
    return names


def assigned_names(code: str) -> set[str]:
    """Module-level names that ``code`` binds itself."""
    table = _symbol_table(code)
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}


@lru_cache(maxsize=16)
def instructor_modules(cells: tuple[str, ...]) -> dict[str, str]:
    """Names the instructor's cells bind to modules (np -> numpy), for following attribute
    chains; the same for every submission, so computed once."""
    modules = {}
    for code in cells:
        module = parse_cell(code)
        for binding in top_level_bindings(module, -1) if module else []:
            if binding.kind == "import":
                modules[binding.name] = binding.module
    return modules


class SubmissionAnalysis:
    """The submission's code cells, with the set-up cells for the names the instructor defines."""

    def __init__(self, student_cells: list[str], setup_cells: list[str], labels: list[str] | None = None):
        """``setup_cells``: the instructor's code cells (their imports name modules);
        ``labels[i]`` names student cell i for messages (e.g. "your cell svm_loss_naive")."""
        self.problem: str | None = None  # what makes every rule fail closed
        self.bindings: dict[str, list[Binding]] = {}
        labels = labels or [f"code cell {i + 1}" for i in range(len(student_cells))]
        for index, code in enumerate(student_cells):
            module = parse_cell(code)
            if module is None:
                self.problem = (f"{labels[index]} is not valid Python, so the grader cannot check the "
                                "assignment's rules")
                continue
            for node in module.body:
                if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                    self.problem = (f"{labels[index]} imports * from {node.module}, which hides what it "
                                    "defines; import the names you use")
            for binding in top_level_bindings(module, index):
                binding.label = labels[index]
                self.bindings.setdefault(binding.name, []).append(binding)
        self.setup_modules = instructor_modules(tuple(setup_cells))

    def roots(self, hidden_code: str) -> list[str]:
        """Student-defined names the hidden code reads (its own ``_`` names excluded)."""
        try:
            used = global_references(hidden_code) - assigned_names(hidden_code)
        except SyntaxError:
            return []
        return sorted(name for name in used if name in self.bindings)

    def closure(self, roots: list[str]) -> Closure:
        """The top-level statements the roots rely on, or the first reason it cannot be followed."""
        if self.problem:
            return Closure(problem=self.problem)
        chosen: dict[int, Binding] = {}
        seen: set[str] = set()
        pending: list[tuple[str, str | None]] = [(root, None) for root in reversed(roots)]
        while pending:
            name, used_by = pending.pop()
            if name in seen or name not in self.bindings:
                continue  # set-up names, builtins, or names the submission never defines
            seen.add(name)
            bindings = self.bindings[name]
            unfollowable = [b for b in bindings if b.kind == "other" or b.conditional]
            if unfollowable:
                b = unfollowable[0]
                how = "inside a block" if b.conditional else "by a statement the grader cannot follow"
                return Closure(problem=f"{name} is bound {how} ({b.where}); define it once, at the top "
                                       "level of a cell")
            if len(bindings) > 1 and not (all(b.kind == "import" for b in bindings)
                                          and len({b.module for b in bindings}) == 1):
                places = ", ".join(b.where for b in bindings)
                return Closure(problem=f"{name} is defined {len(bindings)} times ({places}); define it once")
            binding = bindings[0]
            binding.used_by = used_by
            if binding.kind != "import":
                chosen[id(binding.node)] = binding
                pending += [(n, name) for n in sorted(global_references(ast.unparse(binding.node)), reverse=True)]
            else:
                chosen[id(binding)] = binding
        ordered = sorted(chosen.values(), key=lambda b: (b.cell, b.node.lineno, b.name))
        # A statement that binds several followed names runs once.
        unique, statements = [], set()
        for binding in ordered:
            key = id(binding.node) if binding.kind != "import" else id(binding)
            if key not in statements:
                statements.add(key)
                unique.append(binding)
        return Closure(bindings=unique)

    # --- rules ----------------------------------------------------------------------------------

    def _module_of(self, name: str, local_imports: dict[str, str]) -> str | None:
        if name in local_imports:
            return local_imports[name]
        bindings = self.bindings.get(name)
        if bindings:
            return bindings[0].module if bindings[0].kind == "import" else None
        return self.setup_modules.get(name)

    def check(self, closure: Closure, forbid_syntax: tuple[str, ...] = (),
              forbid_modules: tuple[str, ...] = ()) -> str | None:
        """None when every statement of the closure obeys the rules, else the first violation."""
        if closure.problem:
            return closure.problem
        syntax = {cls: text for rule in forbid_syntax for cls in SYNTAX_RULES[rule][0]
                  for text in [SYNTAX_RULES[rule][1]]}
        for binding in closure.bindings:
            owner = binding.name
            modules = [binding.module] if binding.kind == "import" else []
            local_imports: dict[str, str] = {}
            for node in ast.walk(binding.node) if binding.kind != "import" else []:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for name, path in _import_bindings(node):
                        if path is None:
                            return f"{owner} uses a relative or * import ({binding.where})"
                        local_imports[name] = path
                        modules.append(path)
            for module in modules:
                problem = self._module_problem(owner, module, forbid_modules, binding)
                if problem:
                    return problem
            if binding.kind == "import":
                continue
            for node in ast.walk(binding.node):
                line = f"line {getattr(node, 'lineno', binding.node.lineno)} of {binding.label}"
                if isinstance(node, tuple(syntax)):
                    return f"{owner} uses {syntax[type(node)]} ({line})"
                if isinstance(node, (ast.Global,)):
                    return f"{owner} uses a global statement ({line})"
                if isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES:
                    return f"{owner} uses {node.id}, which the grader cannot follow ({line})"
                if isinstance(node, ast.Name) and node.id in NAMED_ATTRIBUTE_FUNCTIONS:
                    if not self._literal_attribute_call(node, binding.node):
                        return f"{owner} uses {node.id} with a computed name ({line})"
                if isinstance(node, ast.Attribute):
                    if node.attr.startswith("_") or node.attr in FRAME_ATTRIBUTES:
                        return f"{owner} uses the attribute .{node.attr} ({line})"
                    path = self._attribute_path(node, local_imports)
                    if path:
                        problem = self._module_problem(owner, path, forbid_modules, binding, line)
                        if problem:
                            return problem
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    module = self._module_of(node.id, local_imports)
                    if module:
                        problem = self._module_problem(owner, module, forbid_modules, binding, line)
                        if problem:
                            return problem
        return None

    def _module_problem(self, owner: str, module: str, forbid_modules: tuple[str, ...],
                        binding: Binding, line: str | None = None) -> str | None:
        where = line or binding.where
        if binding.kind == "import" and binding.used_by:
            owner, where = binding.used_by, f"imported as {binding.name}, {where}"
        for forbidden in forbid_modules:
            if _within(module, forbidden):
                return f"{owner} uses {forbidden} ({module}, {where}); this assignment is done by hand"
        for internal in INTERNAL_MODULES:
            if _within(module, internal):
                return f"{owner} uses the module {internal}, which the grader cannot follow ({where})"
        return None

    def _attribute_path(self, node: ast.Attribute, local_imports: dict[str, str]) -> str | None:
        """``tf.linalg.matmul`` -> ``tensorflow.linalg.matmul`` when ``tf`` names a module."""
        parts = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            return None
        module = self._module_of(current.id, local_imports)
        return ".".join([module, *reversed(parts)]) if module else None

    @staticmethod
    def _literal_attribute_call(name: ast.Name, tree: ast.AST) -> bool:
        """``getattr(obj, "attr")``-style calls with a literal, public name are followable."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.func is name:
                return (len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                        and isinstance(node.args[1].value, str) and not node.args[1].value.startswith("_")
                        and not node.keywords)
        return False  # getattr used as a value (f = getattr): cannot be followed
