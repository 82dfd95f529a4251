"""Your own code on the worker and the starter: `--app MODULE`.

`load_app("my_module")` imports the module (from the current directory or
PYTHONPATH) and collects what it defines at its top level: `@baton.tool`
functions, `baton.Agent`s and teams, and pydantic models, which become contracts
agents may name. The worker registers the tools (and so can run them); the
starter builds the catalogue of the app's agents and teams from them. A module
that fails to import or defines nothing runnable is refused with a message that
says so, before anything starts.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from baton.core.catalogue_check import CatalogueError, validate_catalogue
from baton.core.contracts import ContractError, register_contract
from baton.core.guardrails import Guardrail
from baton.core.mcp import MCPServer
from baton.core.specs import Catalogue
from baton.core.tools import Tool, ToolDefinitionError
from baton.define.api import Agent, Member, _reach
from baton.define.flows import Flow, FlowDefinitionError


class AppError(ValueError):
    """An --app module that cannot be used: the message names the problem."""


@dataclass
class App:
    """What one module defines at its top level."""

    module: str
    tools: list[Tool] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    guardrails: list[Guardrail] = field(default_factory=list)
    contracts: list[type[BaseModel]] = field(default_factory=list)
    # @baton.flow functions: registered by importing the module, listed here to show.
    flows: list[Flow[Any]] = field(default_factory=list)

    def catalogue(self) -> Catalogue:
        """Every agent and team of the app (and what they reach) as one catalogue."""
        agents: dict[str, Any] = {}
        teams: dict[str, Any] = {}
        tools = {t.name: t.definition.model_dump() for t in self.tools}
        guardrails = {g.name: g.definition.model_dump() for g in self.guardrails}
        for member in self.members:
            part = member.catalogue()
            agents.update({n: a.model_dump(exclude={"name"}) for n, a in part.agents.items()})
            teams.update({n: t.model_dump() for n, t in part.teams.items()})
            tools.update({n: t.model_dump() for n, t in part.tools.items()})
            guardrails.update({n: g.model_dump() for n, g in part.guardrails.items()})
        try:
            return validate_catalogue({"agents": agents, "teams": teams, "tools": tools,
                                    "guardrails": guardrails}, source=f"app {self.module}")
        except CatalogueError as err:
            raise AppError(str(err)) from None


def import_module(name: str) -> ModuleType:
    """Import `name` as the user would: the current directory first on the path. A file
    path (./my_app.py) is imported as the module it is (see `module_of_file`)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if name.endswith(".py") or "/" in name or os.sep in name:
        name = module_of_file(name)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise AppError(
                f"cannot import app module {name!r}: no module named {err.name!r}. Give a "
                "module name (my_app, or package.module) importable from the current "
                "directory or PYTHONPATH, or a file (./my_app.py)") from None
        raise AppError(f"importing app module {name!r} failed: {err}") from None
    except (ToolDefinitionError, ContractError, FlowDefinitionError) as err:
        raise AppError(f"app module {name!r}: {err}") from None
    except Exception as err:  # any error in the user's module is reported, not a traceback
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise AppError(f"importing app module {name!r} raised {type(err).__name__}: {err} "
                       f"({where.filename}:{where.lineno})") from None


def module_of_file(path_text: str) -> str:
    """The module name a Python file is imported under: its dotted name when it sits in
    a package below the current directory (so its relative imports work), else its
    file name, with its folder put on the import path (as `python my_app.py` would)."""
    path = Path(path_text)
    if path.suffix != ".py" or not path.is_file():
        raise AppError(f"--app {path_text!r}: no such Python file; give a file "
                       "(./my_app.py) or a module name (my_app, package.module)")
    path = path.resolve()
    here = Path.cwd().resolve()
    parts = path.relative_to(here).with_suffix("").parts if path.is_relative_to(here) else ()
    in_packages = all((here.joinpath(*parts[:i]) / "__init__.py").is_file()
                      for i in range(1, len(parts)))
    if len(parts) > 1 and in_packages and all(p.isidentifier() for p in parts):
        return ".".join(parts)
    if not path.stem.isidentifier():
        raise AppError(f"--app {path_text!r}: {path.stem!r} is not a name Python can import; "
                       "rename the file (letters, digits and _, not starting with a digit)")
    loaded = sys.modules.get(path.stem)
    if loaded is not None and getattr(loaded, "__file__", None) != str(path):
        raise AppError(f"--app {path_text!r}: a module named {path.stem!r} is already "
                       f"imported from {getattr(loaded, '__file__', None) or 'Python itself'}; "
                       "rename the file")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    return path.stem


def load_app(name: str) -> App:
    """Import `name` and collect its tools, agents, teams and contracts."""
    module = import_module(name)
    app = App(module=name)
    for value in vars(module).values():
        if isinstance(value, Tool):
            app.tools.append(value)
        elif isinstance(value, Guardrail):
            app.guardrails.append(value)
        elif isinstance(value, Member):
            app.members.append(value)
        elif isinstance(value, Flow):
            app.flows.append(value)
        elif (isinstance(value, type) and issubclass(value, BaseModel)
              and value.__module__ == module.__name__):
            app.contracts.append(value)
    for model in app.contracts:
        try:
            register_contract(model)
        except ContractError as err:
            raise AppError(f"app module {name!r}: {err}") from None
    if not app.tools and not app.members and not app.guardrails and not app.flows:
        raise AppError(f"app module {name!r} defines nothing runnable: no @baton.tool "
                       "function, @baton.guardrail, @baton.flow, baton.Agent or team at its "
                       "top level")
    app.tools = collect_tools([*app.tools, *app.members])
    app.guardrails = collect_guardrails([*app.guardrails, *app.members])
    return app


def collect_tools(apps: Iterable[Member | Tool | Flow[Any] | ModuleType | str]) -> list[Tool]:
    """The tools of agents, teams, flows (their module's), modules (objects or names) and
    tools, once each."""
    found: dict[str, Tool] = {}

    def add(tool: Tool) -> None:
        if found.setdefault(tool.name, tool) is not tool:
            raise AppError(f"two different tools are named {tool.name!r}: "
                           f"{found[tool.name].fn!r} and {tool.fn!r}")

    for item in apps:
        if isinstance(item, str):
            for tool in load_app(item).tools:
                add(tool)
        elif isinstance(item, ModuleType):
            for tool in load_app(item.__name__).tools:
                add(tool)
        elif isinstance(item, Flow):
            for tool in load_app(item.fn.__module__).tools:
                add(tool)
        elif isinstance(item, Tool):
            add(item)
        else:
            for member in _reach(item):
                for tool in member.tools():
                    add(tool)
    return list(found.values())


def collect_guardrails(apps: Iterable[Any]) -> list[Guardrail]:
    """The function guardrails of agents, teams, modules (objects or names) and guardrails."""
    found: dict[str, Guardrail] = {}
    for item in apps:
        if isinstance(item, Guardrail):
            found[item.name] = item
        elif isinstance(item, str | ModuleType | Flow):
            name = (item if isinstance(item, str) else item.fn.__module__
                    if isinstance(item, Flow) else item.__name__)
            found.update({g.name: g for g in load_app(name).guardrails})
        elif isinstance(item, Member):
            for member in _reach(item):
                found.update({g.name: g for g in member.guardrails()
                              if isinstance(g, Guardrail)})
    return list(found.values())


def app_catalogue(modules: Iterable[str]) -> Catalogue:
    """One catalogue of every agent and team the modules define."""
    apps = [load_app(name) for name in modules]
    merged = App(module=", ".join(a.module for a in apps),
                 tools=collect_tools([t for a in apps for t in a.tools]),
                 members=[m for a in apps for m in a.members])
    if not merged.members:
        raise AppError(f"app module(s) {merged.module} define tools but no baton.Agent or "
                       "team to run; define one at the module's top level")
    return merged.catalogue()


def collect_mcp_servers(apps: Iterable[Any]) -> list[MCPServer]:
    """The MCP servers of agents and teams (and what they reach), of modules (objects or
    names: their top-level servers and agents; a flow's are its module's) and servers
    given as they are."""
    found: dict[int, MCPServer] = {}

    def from_member(member: Member) -> None:
        for reached in _reach(member):
            if isinstance(reached, Agent):
                found.update({id(s): s for s in reached.mcp_servers()})

    for item in apps:
        if isinstance(item, MCPServer):
            found[id(item)] = item
        elif isinstance(item, Member):
            from_member(item)
        elif isinstance(item, str | ModuleType | Flow):
            module = (import_module(item) if isinstance(item, str)
                      else import_module(item.fn.__module__) if isinstance(item, Flow)
                      else item)
            for value in vars(module).values():
                if isinstance(value, MCPServer):
                    found[id(value)] = value
                elif isinstance(value, Member):
                    from_member(value)
    return list(found.values())
