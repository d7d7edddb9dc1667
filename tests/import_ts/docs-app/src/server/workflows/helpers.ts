// Code that is no workflow is not evaluated: nothing here is converted.
export const retryDelay = (attempt: number): number => 2 ** attempt * 1000;

export function channelFor(team: string): string {
  return `team-${team}`;
}
