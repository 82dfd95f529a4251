"""An extraction pipeline: free text -> a validated `Invoice` -> an audit gate -> a summary.

Every stage returns one of the pydantic models below. Baton asks the model for that
JSON schema and validates the answer before the next stage sees it; an answer that
does not validate goes back to the model with the validation error (`max_repairs`
times), then to the agent's fallback models, else the run fails with
`ContractViolation`. The auditor is a gate: it checks the arithmetic with a tool, and
when `valid` comes back false the pipeline loops back to the extractor with the
auditor's `feedback`, at most `max_attempts` times, then goes on and says so.

    python examples/extraction_pipeline.py "Invoice INV-7 from Acme: 2 x widget at 5 USD..."
    python worker.py --app examples.extraction_pipeline     # or: a worker, and the starter
    python starter.py run invoice_pipeline "..." --app examples.extraction_pipeline
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Literal

from pydantic import BaseModel, Field

import baton

# offline:* needs no key; e.g. BATON_EXAMPLE_MODEL=openai:gpt-5-nano with OPENAI_API_KEY set.
MODEL = os.environ.get("BATON_EXAMPLE_MODEL", "offline:standard")


class LineItem(BaseModel):
    description: str = Field(min_length=1)
    quantity: float = Field(gt=0)
    unit_price: float = Field(ge=0)


class Invoice(BaseModel):
    """An invoice as written in the text, nothing invented."""

    vendor: str = Field(min_length=1)
    invoice_number: str = Field(min_length=1)
    issued_on: str = Field(description="The invoice date as YYYY-MM-DD.")
    currency: Literal["USD", "EUR", "GBP"]
    line_items: list[LineItem] = Field(min_length=1)
    total_due: float = Field(ge=0)


class ValidatedInvoice(BaseModel):
    """The auditor's verdict: the pipeline's gate is `valid`."""

    invoice: Invoice
    valid: bool = Field(description="True when the totals add up and nothing is missing.")
    feedback: str = Field(description="What the extractor must fix when not valid.")


class InvoiceSummary(BaseModel):
    vendor: str = Field(min_length=1)
    total_due: float = Field(ge=0)
    currency: Literal["USD", "EUR", "GBP"]
    summary: str = Field(min_length=1, description="One sentence for the accounts team.")


@baton.tool(local=True)  # pure arithmetic: a local activity
def check_totals(invoice: Invoice) -> dict[str, Any]:
    """Add up an invoice's line items and compare them with its total due."""
    computed = round(sum(i.quantity * i.unit_price for i in invoice.line_items), 2)
    return {"line_items_sum": computed, "total_due": invoice.total_due,
            "matches": abs(computed - invoice.total_due) < 0.01}


extractor = baton.Agent(
    "extractor", "Extract the invoice from the text exactly as written. If feedback is "
    "given, fix what it names.", model=MODEL, output=Invoice, max_repairs=2)
auditor = baton.Agent(
    "auditor", "Check the extracted invoice against the original text. Call check_totals; "
    "set valid to false and say what to fix if the totals do not match or a field is "
    "wrong.", model=MODEL, tools=[check_totals], output=ValidatedInvoice)
summarizer = baton.Agent(
    "summarizer", "Summarize the validated invoice for the accounts team.", model=MODEL,
    output=InvoiceSummary)
invoice_pipeline = baton.Pipeline("invoice_pipeline", [
    extractor,
    baton.Stage(auditor, gate_field="valid", loop_back_to=extractor),
    summarizer,
], max_attempts=3)

SAMPLE = ("Invoice INV-2291 from Northwind Traders, dated 2026-11-03. 3 x USB-C dock at "
          "89.00 USD, 2 x 27-inch monitor at 279.00 USD, shipping 15.00 USD. "
          "Total due 840.00 USD by 2026-12-03.")


async def main(text: str) -> None:
    async with baton.worker(invoice_pipeline):  # an in-process worker with the tool
        outcome = await baton.run(invoice_pipeline, text)
    for stage in outcome.result.stages:
        print(f"- {stage.stage}: {stage.attempts} attempt(s)")
    print(f"status:     {outcome.status}", *outcome.result.reasons, sep="\n  ")
    print(f"answer:     {outcome.output.summary if outcome.output else outcome.answer}")
    print(f"output:     {outcome.output!r}")  # an InvoiceSummary, validated
    print(f"usage:      {outcome.usage.calls} model calls, {outcome.usage.tool_calls} tool "
          f"calls, {outcome.usage.total_tokens} tokens")
    print(f"Web UI:     {outcome.link}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or SAMPLE))
