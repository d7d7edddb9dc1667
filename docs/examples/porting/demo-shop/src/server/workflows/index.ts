export { syncEnrichedOrders } from './syncEnrichedOrders';
export { notifyTopCustomers } from './notifyTopCustomers';
export { customerOrderHistory } from './customerOrderHistory';
export { syncNewOrders } from './syncNewOrders';
