// A client of the generated types (schema.d.ts, from openapi-typescript): each request and
// answer below must type-check against the OpenAPI 3.1 document, or tsc --strict fails.
import type { components, operations, paths } from "./schema";

type Poll = components["schemas"]["Poll"];
type Ballot = components["schemas"]["BallotRequest"];
type Results = components["schemas"]["Results"];
type FieldErrors =
  operations["polls_vote_create"]["responses"][400]["content"]["application/json"];
type Conflict = operations["polls_vote_create"]["responses"][409]["content"]["application/json"];
type Page = operations["polls_list"]["responses"][200]["content"]["application/json"];

const vote = "/api/v1/polls/{id}/vote/" satisfies keyof paths;
const results = "/api/v1/polls/{id}/results/" satisfies keyof paths;

export const single: Ballot = { options: [21] };
export const ranked: Ballot = { ranking: [22, 21, 23] };
export const scored: Ballot = { scores: [{ option: 21, score: 4 }] };

export function winner(answer: Results): number | null | undefined {
  return answer.method === "ranked" ? answer.winner : undefined;
}

export function percentages(answer: Results): number[] {
  return answer.options.map((option) => option.percentage);
}

export function titles(page: Page): string[] {
  return page.results.map((poll: Poll) => poll.title);
}

export function code(error: Conflict): string {
  return `${error.code}: ${error.detail}`;
}

export function messages(errors: FieldErrors): string[] {
  return Object.entries(errors).flatMap(([field, value]) =>
    Array.isArray(value) ? value.map((message) => `${field}: ${message}`) : [],
  );
}

export async function castBallot(base: string, token: string, poll: number, ballot: Ballot) {
  const url = base + vote.replace("{id}", String(poll));
  const answer = await fetch(url, {
    method: "POST",
    headers: { Authorization: `Token ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(ballot),
  });
  type Receipt =
    paths[typeof vote]["post"]["responses"][201]["content"]["application/json"];
  return (await answer.json()) as Receipt;
}

export const resultsPath = results;
