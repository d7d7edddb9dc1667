export const orders = {
  steps: [
    {
      service: 'shop',
      operation: 'listOrders',
      fieldMapping: { total: (order: { total: number }) => order.total / 100 },
    },
  ],
};
