"""The declarative Jenkinsfile read as Jenkins nests it: blocks, stages, and each stage's steps in order.

Jenkins does not run here, so tests/code/test_jenkinsfile.py checks the pipeline's structure: which
stage takes an agent, which `when`, options and steps it has, inside which other stages. Comments are
dropped and strings kept whole, so a brace, a quote or `//` inside a string changes nothing.
"""

import re
from dataclasses import dataclass, field

OPENING_QUOTES = ("'''", '"""', "'", '"')
STAGE_HEAD = re.compile(r"stage\('([^']+)'\)")
SHELL_STEP = re.compile(r"\bsh\s*\(?\s*(?:script:\s*)?'([^']*)'")
# Flags of `when` that choose when it is evaluated; they are no part of the condition itself.
WHEN_FLAGS = re.compile(r"^before(Agent|Input|Options)\s+true$")


@dataclass
class Block:
    """`head { ... }`: its statements and inner blocks, in order."""

    head: str
    items: list["Block | str"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return re.match(r"[\w.]*", self.head).group()

    def child(self, name: str) -> "Block | None":
        return next((item for item in self.items if isinstance(item, Block) and item.name == name), None)

    def children(self) -> list["Block"]:
        return [item for item in self.items if isinstance(item, Block)]

    def statements(self) -> list[str]:
        """Every statement in this block and the blocks inside it, in order."""
        found: list[str] = []
        for item in self.items:
            found.extend(item.statements() if isinstance(item, Block) else [item])
        return found

    def render(self) -> str:
        """The block on one line, statements separated by single spaces."""
        inner = " ".join(item.render() if isinstance(item, Block) else item for item in self.items)
        return f"{self.head} {{ {inner} }}"


def parse(text: str) -> Block:
    """The tree of blocks of a Groovy file; the root's head is empty."""
    stack = [Block("")]
    buffer: list[str] = []
    depth = 0  # of parentheses and brackets: a newline inside them continues the statement
    i = 0

    def flush() -> str:
        statement = " ".join("".join(buffer).split())
        buffer.clear()
        return statement

    while i < len(text):
        char = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        quote = next((q for q in OPENING_QUOTES if text.startswith(q, i)), None)
        if quote:
            end = i + len(quote)
            while not text.startswith(quote, end):
                end += 2 if text[end] == "\\" else 1
            buffer.append(text[i : end + len(quote)])
            i = end + len(quote)
            continue
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "{" and depth == 0:
            block = Block(flush())
            stack[-1].items.append(block)
            stack.append(block)
        elif char == "}" and depth == 0:
            if statement := flush():
                stack[-1].items.append(statement)
            stack.pop()
        elif char in "\n;" and depth == 0:
            if statement := flush():
                stack[-1].items.append(statement)
        else:
            buffer.append(char)
        i += 1
    if len(stack) != 1:
        raise ValueError("unbalanced braces in the Jenkinsfile")
    return stack[0]


@dataclass
class Stage:
    name: str
    block: Block
    parents: list["Stage"]  # outermost first

    @property
    def lineage(self) -> list["Stage"]:
        return [*self.parents, self]

    @property
    def steps(self) -> list[str]:
        """The statements of its `steps`, in order (inside script, withCredentials, ... too)."""
        steps = self.block.child("steps")
        return steps.statements() if steps else []

    @property
    def post(self) -> list[str]:
        post = self.block.child("post")
        return post.statements() if post else []

    @property
    def options(self) -> list[str]:
        options = self.block.child("options")
        return options.statements() if options else []

    @property
    def has_agent(self) -> bool:
        return self.block.child("agent") is not None or any(
            item.startswith("agent ") for item in self.block.items if isinstance(item, str)
        )

    @property
    def when(self) -> Block | None:
        return self.block.child("when")

    def condition(self) -> str:
        """Its own `when`, without the flags that only choose when it is evaluated ('' if none)."""
        if self.when is None:
            return ""
        kept = [item for item in self.when.items if not (isinstance(item, str) and WHEN_FLAGS.match(item))]
        return " ".join(item.render() if isinstance(item, Block) else item for item in kept)

    def conditions(self) -> list[str]:
        """The conditions of this stage and of every stage around it."""
        return [condition for stage in self.lineage if (condition := stage.condition())]


def stages(root: Block) -> list[Stage]:
    """Every stage, nested ones included, in the order Jenkins runs them."""
    found: list[Stage] = []

    def walk(block: Block, parents: list[Stage]) -> None:
        for child in block.children():
            match = STAGE_HEAD.fullmatch(child.head)
            if match:
                stage = Stage(match.group(1), child, parents)
                found.append(stage)
                walk(child, [*parents, stage])
            else:
                walk(child, parents)

    walk(root, [])
    return found


def shell_commands(statements: list[str]) -> list[str]:
    return [match.group(1) for statement in statements if (match := SHELL_STEP.search(statement))]


def make_target(command: str) -> str | None:
    """The target of a `make` command line (its first word that is neither a flag nor VAR=value)."""
    words = command.split()
    if not words or words[0] != "make":
        return None
    return next(word for word in words[1:] if not word.startswith("-") and "=" not in word)
