// The registry of the app's workflows: re-exports are not read as workflows.
export * from './flow';
export { sql } from './sql';
export { default as persistToDatabase } from './persistToDatabase';
import { serviceCall } from './serviceCall';
import { paginate } from './paginate';

export default { serviceCall, paginate };
