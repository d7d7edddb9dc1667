const A = { ...B, a: 1 };
const B = { ...A, b: 2 };

export const orders = {
  steps: [{ service: 'shop', operation: 'listOrders', params: A }],
};
