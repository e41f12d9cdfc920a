"""The generated world: products, rooms and ground truth in the real data's file formats,
for the offline profile and the tests (`generate.generate_world`)."""
